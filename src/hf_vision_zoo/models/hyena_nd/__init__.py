"""Hyena N-D (paper 16 of the catalog): config, models, image processors and the paper's DeiT-Tiny variants."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_hyena_nd import HyenaNdConfig
from .image_processing_hyena_nd import HyenaNdImageProcessor, HyenaNdImageProcessorPil
from .modeling_hyena_nd import HyenaNdBlock, HyenaNdForImageClassification, HyenaNdModel, HyenaNdPreTrainedModel

register_architecture(Architecture(
    name="hyena_nd",
    config_class=HyenaNdConfig,
    model_classes={"feature-extraction": HyenaNdModel, "image-classification": HyenaNdForImageClassification},
    image_processor_classes={"torchvision": HyenaNdImageProcessor, "pil": HyenaNdImageProcessorPil},
    paper="Multi-Dimensional Hyena for Spatial Inductive Bias",
    paper_url="https://arxiv.org/abs/2309.13600",
    official_repo="https://github.com/Itamarzimm/HyenaND",
    license="apache-2.0",
    display_name="Hyena N-D",
    # one Hyena block (flipped, "seq") then one attention block, so both mixers are covered by the common tests
    tiny_config=dict(image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     mixer_pattern="alternating", filter_order=16, num_labels=5, drop_path_rate=0.0),
))

# The official README's two recipes: DeiT-Tiny/16 at 224 trained on CelebA's 40 binary attributes (`--data-set CELEB
# --bce-loss`, i.e. multi-label), evaluated with DeiT's transform (short side 256, centre crop 224, ImageNet mean/std).
_DEIT_EVAL = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
_DEIT_TINY = dict(image_size=224, patch_size=16, hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                  hyena_order=2, filter_order=64, directional_mode="seq", use_cls_token=False, num_labels=40,
                  problem_type="multi_label_classification")
_NO_WEIGHTS = ("No released weights. Official recipe: `main.py --model deit_tiny_patch16_224 --method {method} "
               "--directional_mode seq --hyena2d_filter --data-set CELEB --bce-loss --epochs 20`. {params} "
               "parameters with a 1000-class head.")

register_variant(Variant(
    name="hyena_nd_deit_tiny_patch16_224", architecture="hyena_nd",
    config={**_DEIT_TINY, "mixer_pattern": "all_hyena"}, preprocessing=dict(_DEIT_EVAL),
    dataset="celeba (40 attributes)", notes=_NO_WEIGHTS.format(method="hyena2d", params="6,042,400"),
))
register_variant(Variant(
    name="hyena_nd_hybrid_deit_tiny_patch16_224", architecture="hyena_nd",
    config={**_DEIT_TINY, "mixer_pattern": "hyena_then_attention"}, preprocessing=dict(_DEIT_EVAL),
    dataset="celeba (40 attributes)",
    notes=_NO_WEIGHTS.format(method="hyena2dattn", params="5,906,830") + " Blocks 0-6 Hyena, 7-11 attention.",
))

__all__ = ["HyenaNdConfig", "HyenaNdModel", "HyenaNdForImageClassification", "HyenaNdPreTrainedModel",
           "HyenaNdBlock", "HyenaNdImageProcessor", "HyenaNdImageProcessorPil"]
