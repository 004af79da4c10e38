"""Swin Transformer (paper 40 of the catalog): config, models, image processors and the published variants."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_swin import SwinConfig
from .image_processing_swin import SwinImageProcessor, SwinImageProcessorPil
from .modeling_swin import SwinBackbone, SwinForImageClassification, SwinModel, SwinPreTrainedModel

register_architecture(Architecture(
    name="swin",
    config_class=SwinConfig,
    model_classes={"feature-extraction": SwinModel, "image-classification": SwinForImageClassification,
                   "backbone": SwinBackbone},
    image_processor_classes={"torchvision": SwinImageProcessor, "pil": SwinImageProcessorPil},
    paper="Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
    paper_url="https://arxiv.org/abs/2103.14030",
    official_repo="https://github.com/microsoft/Swin-Transformer",
    license="mit",
    display_name="Swin Transformer",
    tiny_config=dict(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4,
                     num_labels=5, drop_path_rate=0.0),
))

_SIZES = {  # embed_dim, depths, num_heads (official configs/swin/*.yaml)
    "tiny": (96, [2, 2, 6, 2], [3, 6, 12, 24]),
    "small": (96, [2, 2, 18, 2], [3, 6, 12, 24]),
    "base": (128, [2, 2, 18, 2], [4, 8, 16, 32]),
    "large": (192, [2, 2, 18, 2], [6, 12, 24, 48]),
}
_RELEASE = "https://github.com/SwinTransformer/storage/releases/download"
# (size, resolution, tag) -> (ImageNet-1k top-1 from the official MODELHUB.md, checkpoint file)
_PUBLISHED = {
    ("tiny", 224, "ms_in1k"): (81.2, "v1.0.0/swin_tiny_patch4_window7_224.pth"),
    ("tiny", 224, "ms_in22k"): (None, "v1.0.8/swin_tiny_patch4_window7_224_22k.pth"),
    ("tiny", 224, "ms_in22k_ft_in1k"): (80.9, "v1.0.8/swin_tiny_patch4_window7_224_22kto1k_finetune.pth"),
    ("small", 224, "ms_in1k"): (83.2, "v1.0.0/swin_small_patch4_window7_224.pth"),
    ("small", 224, "ms_in22k"): (None, "v1.0.8/swin_small_patch4_window7_224_22k.pth"),
    ("small", 224, "ms_in22k_ft_in1k"): (83.2, "v1.0.8/swin_small_patch4_window7_224_22kto1k_finetune.pth"),
    ("base", 224, "ms_in1k"): (83.5, "v1.0.0/swin_base_patch4_window7_224.pth"),
    ("base", 224, "ms_in22k"): (None, "v1.0.0/swin_base_patch4_window7_224_22k.pth"),
    ("base", 224, "ms_in22k_ft_in1k"): (85.2, "v1.0.0/swin_base_patch4_window7_224_22kto1k.pth"),
    ("base", 384, "ms_in1k"): (84.5, "v1.0.0/swin_base_patch4_window12_384.pth"),
    ("base", 384, "ms_in22k"): (None, "v1.0.0/swin_base_patch4_window12_384_22k.pth"),
    ("base", 384, "ms_in22k_ft_in1k"): (86.4, "v1.0.0/swin_base_patch4_window12_384_22kto1k.pth"),
    ("large", 224, "ms_in22k"): (None, "v1.0.0/swin_large_patch4_window7_224_22k.pth"),
    ("large", 224, "ms_in22k_ft_in1k"): (86.3, "v1.0.0/swin_large_patch4_window7_224_22kto1k.pth"),
    ("large", 384, "ms_in22k"): (None, "v1.0.0/swin_large_patch4_window12_384_22k.pth"),
    ("large", 384, "ms_in22k_ft_in1k"): (87.3, "v1.0.0/swin_large_patch4_window12_384_22kto1k.pth"),
}

for (_size, _res, _tag), (_top1, _file) in _PUBLISHED.items():
    _embed, _depths, _heads = _SIZES[_size]
    _window = 7 if _res == 224 else 12
    # official eval transform: 224 models resize the short side to 256 and centre-crop; 384 models resize to 384
    _pre = ({"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
            if _res == 224 else {"size": {"height": _res, "width": _res}, "do_center_crop": False})
    register_variant(Variant(
        name=f"swin_{_size}_patch4_window{_window}_{_res}.{_tag}",
        architecture="swin",
        config=dict(image_size=_res, embed_dim=_embed, depths=_depths, num_heads=_heads, window_size=_window,
                    num_labels=21841 if _tag == "ms_in22k" else 1000),
        preprocessing=_pre,
        dataset="imagenet-22k" if _tag == "ms_in22k" else "imagenet-1k",
        top1=_top1,
        checkpoint=f"{_RELEASE}/{_file}",
    ))

__all__ = ["SwinConfig", "SwinModel", "SwinForImageClassification", "SwinBackbone", "SwinPreTrainedModel",
           "SwinImageProcessor", "SwinImageProcessorPil"]
