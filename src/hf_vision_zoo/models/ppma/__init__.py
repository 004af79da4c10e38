"""PPMA, Polyline Path Masked Attention for Vision Transformer (paper 9 of the catalog): config, models, image
processors and the published variants."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_ppma import PpmaConfig
from .image_processing_ppma import PpmaImageProcessor, PpmaImageProcessorPil
from .modeling_ppma import PpmaBackbone, PpmaForImageClassification, PpmaModel, PpmaPreTrainedModel

register_architecture(Architecture(
    name="ppma",
    config_class=PpmaConfig,
    model_classes={"feature-extraction": PpmaModel, "image-classification": PpmaForImageClassification,
                   "backbone": PpmaBackbone},
    image_processor_classes={"torchvision": PpmaImageProcessor, "pil": PpmaImageProcessorPil},
    paper="Polyline Path Masked Attention for Vision Transformer",
    paper_url="https://arxiv.org/abs/2506.15940",
    official_repo="https://github.com/zhongchenzhao/PPMA",
    license="apache-2.0",
    display_name="PPMA",
    # one axial (chunkwise) stage and one full polyline-mask stage: 8x8 then 4x4 tokens
    tiny_config=dict(image_size=32, embed_dims=[16, 32], depths=[1, 2], num_heads=[2, 4], mlp_ratios=[2, 2],
                     chunkwise_recurrents=[True, False], layerscales=[False, True], layer_init_values=0.1,
                     projection=64, num_labels=5, drop_path_rate=0.0),
))

# official classification/models/PPMA.py model definitions; top-1 and checkpoints from the official README
# (checkpoints: the Hugging Face Hub repo ZhongchenZhao/PPMA, as linked from the official README)
_HUB = "https://huggingface.co/ZhongchenZhao/PPMA/blob/main/checkpoints/classification"
_VARIANTS = {
    "ppma_tiny_224.in1k": (dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 8, 2], num_heads=[4, 4, 8, 16],
                                mlp_ratios=[3, 3, 3, 3], drop_path_rate=0.1,
                                chunkwise_recurrents=[True, True, False, False],
                                layerscales=[False, False, False, False]),
                           82.6, "PPMA_T_202502251000/best.pth"),
    "ppma_small_224.in1k": (dict(embed_dims=[64, 128, 256, 512], depths=[3, 4, 18, 4], num_heads=[4, 4, 8, 16],
                                 mlp_ratios=[4, 4, 3, 3], drop_path_rate=0.15,
                                 chunkwise_recurrents=[True, True, True, False],
                                 layerscales=[False, False, False, False]),
                            84.2, "PPMA_S_202504021000/best.pth"),
    "ppma_base_224.in1k": (dict(embed_dims=[80, 160, 320, 512], depths=[4, 8, 25, 8], num_heads=[5, 5, 10, 16],
                                mlp_ratios=[4, 4, 3, 3], drop_path_rate=0.4,
                                chunkwise_recurrents=[True, True, True, False],
                                layerscales=[False, False, True, True], layer_init_values=1e-6),
                           85.0, "PPMA_B_202504101400/best.pth"),
}

for _name, (_config, _top1, _file) in _VARIANTS.items():
    register_variant(Variant(
        name=_name,
        architecture="ppma",
        config=dict(image_size=224, num_labels=1000, **_config),
        preprocessing={"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224},
                       "do_center_crop": True},
        dataset="imagenet-1k",
        top1=_top1,
        checkpoint=f"{_HUB}/{_file}",
    ))

__all__ = ["PpmaConfig", "PpmaModel", "PpmaForImageClassification", "PpmaBackbone", "PpmaPreTrainedModel",
           "PpmaImageProcessor", "PpmaImageProcessorPil"]
