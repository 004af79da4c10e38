"""Vision Transformer (ViT): config, models, image processors and the published variants (AugReg, DeiT, MAE, DINO).

The masking-aware encoder every masked-image-modeling method of the zoo builds on (MAE, HPM, GMML, MaskAlign, MTO,
Hybrid Distill); see `modeling_vit` for the masking arguments.
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_vit import VitConfig
from .image_processing_vit import VitImageProcessor, VitImageProcessorPil
from .modeling_vit import VitEmbeddings, VitForImageClassification, VitModel, VitModelOutput, VitPreTrainedModel

register_architecture(Architecture(
    name="vit",
    config_class=VitConfig,
    model_classes={"feature-extraction": VitModel, "image-classification": VitForImageClassification},
    image_processor_classes={"torchvision": VitImageProcessor, "pil": VitImageProcessorPil},
    paper="An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
    paper_url="https://arxiv.org/abs/2010.11929",
    official_repo="https://github.com/google-research/vision_transformer",
    license="apache-2.0",
    display_name="ViT",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     num_labels=5),
))

_SIZES = {  # hidden_size, depth, heads (ViT paper Table 1; Ti/S from DeiT)
    "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
_IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
_CROP_0875 = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
_CROP_09 = {"size": {"shortest_edge": 248}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
_AUGREG = "https://storage.googleapis.com/vit_models/augreg"
_AUGREG_FILES = {  # AugReg (Steiner et al., 2021) i21k-pretrained, i1k-fine-tuned at 224; timm's top-1
    "tiny": (75.5, "Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224.npz"),
    "small": (81.4, "S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224.npz"),
    "base": (84.5, "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224.npz"),
    "large": (85.8, "L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_224.npz"),
}


def _size(name: str, patch: int = 16) -> dict:
    hidden, depth, heads = _SIZES[name]
    return dict(image_size=224, patch_size=patch, hidden_size=hidden, num_hidden_layers=depth,
                num_attention_heads=heads, num_labels=1000)


for _name, (_top1, _file) in _AUGREG_FILES.items():
    register_variant(Variant(
        name=f"vit_{_name}_patch16_224.augreg_in21k_ft_in1k", architecture="vit", config=_size(_name),
        preprocessing=dict(_CROP_09), dataset="imagenet-21k -> imagenet-1k", top1=_top1,
        checkpoint=f"{_AUGREG}/{_file}",
        notes="JAX .npz checkpoint; convert with timm's loader first (timm.create_model(..., pretrained_file=...)), "
              "then --source timm",
    ))

# DeiT (Touvron et al., ICML 2021) without distillation token: a plain ViT trained on ImageNet-1k only
for _name, _top1, _file in (("tiny", 72.2, "deit_tiny_patch16_224-a1311bcf.pth"),
                            ("small", 79.9, "deit_small_patch16_224-cd65a155.pth"),
                            ("base", 81.8, "deit_base_patch16_224-b5f2ef4d.pth")):
    register_variant(Variant(
        name=f"deit_{_name}_patch16_224.fb_in1k", architecture="vit", config=_size(_name),
        preprocessing={**_CROP_0875, **_IMAGENET}, dataset="imagenet-1k", top1=_top1,
        checkpoint=f"https://dl.fbaipublicfiles.com/deit/{_file}",
    ))

# MAE (He et al., CVPR 2022): the released pre-trained encoders (no head) and the fine-tuned classifiers, which pool
# the mean of the patch tokens through fc_norm (the official `global_pool`)
for _name, _patch, _ft_top1 in (("base", 16, 83.6), ("large", 16, 85.9), ("huge", 14, 86.9)):
    register_variant(Variant(
        name=f"vit_{_name}_patch{_patch}_224.mae", architecture="vit", config={**_size(_name, _patch), "num_labels": 0},
        preprocessing={**_CROP_0875, **_IMAGENET}, dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_{_name}.pth",
        notes="MAE pre-trained encoder, no classifier; --source official",
    ))
    register_variant(Variant(
        name=f"vit_{_name}_patch{_patch}_224.mae_ft_in1k", architecture="vit",
        config={**_size(_name, _patch), "pooling": "mean"},
        preprocessing={**_CROP_0875, **_IMAGENET}, dataset="imagenet-1k", top1=_ft_top1,
        checkpoint=f"https://dl.fbaipublicfiles.com/mae/finetune/mae_finetuned_vit_{_name}.pth",
        notes="MAE fine-tuned (global average pooling + fc_norm); --source official",
    ))

# DINO (Caron et al., ICCV 2021) self-supervised encoders, the usual teachers of the distillation methods
for _name, _url in (("small", "dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth"),
                    ("base", "dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth")):
    register_variant(Variant(
        name=f"vit_{_name}_patch16_224.dino", architecture="vit", config={**_size(_name), "num_labels": 0},
        preprocessing={**_CROP_0875, **_IMAGENET}, dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://dl.fbaipublicfiles.com/dino/{_url}", notes="DINO encoder, no classifier; --source timm",
    ))

__all__ = ["VitConfig", "VitModel", "VitForImageClassification", "VitPreTrainedModel", "VitModelOutput",
           "VitEmbeddings", "VitImageProcessor", "VitImageProcessorPil"]
