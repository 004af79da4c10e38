"""CrossViT (paper 10 of the catalog): config, models, image processors and the published variants."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_crossvit import CrossVitConfig
from .image_processing_crossvit import CrossVitImageProcessor, CrossVitImageProcessorPil, eval_preprocessing
from .modeling_crossvit import CrossVitForImageClassification, CrossVitModel, CrossVitPreTrainedModel

register_architecture(Architecture(
    name="crossvit",
    config_class=CrossVitConfig,
    model_classes={"feature-extraction": CrossVitModel, "image-classification": CrossVitForImageClassification},
    image_processor_classes={"torchvision": CrossVitImageProcessor, "pil": CrossVitImageProcessorPil},
    paper="CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification",
    paper_url="https://arxiv.org/abs/2103.14899",
    official_repo="https://github.com/IBM/CrossViT",
    license="apache-2.0",
    display_name="CrossViT",
    tiny_config=dict(image_size=[36, 32], patch_size=[6, 8], embed_dim=[16, 32], depth=[[1, 2, 0], [1, 2, 0]],
                     num_heads=[2, 2], mlp_ratio=[2, 2, 1], num_labels=5, drop_path_rate=0.0),
))

# size -> (embed_dim, depth of each of the 3 multi-scale blocks, heads, mlp_ratio) (official models/crossvit.py)
_SIZES = {
    "tiny": ([96, 192], [1, 4, 0], [3, 3], [4, 4, 1]),
    "small": ([192, 384], [1, 4, 0], [6, 6], [4, 4, 1]),
    "base": ([384, 768], [1, 4, 0], [12, 12], [4, 4, 1]),
    "9": ([128, 256], [1, 3, 0], [4, 4], [3, 3, 1]),
    "15": ([192, 384], [1, 5, 0], [6, 6], [3, 3, 1]),
    "18": ([224, 448], [1, 6, 0], [7, 7], [3, 3, 1]),
}
_RELEASE = "https://github.com/IBM/CrossViT/releases/download/weights-0.1"
# (size, dagger, input size) -> ImageNet-1k top-1 of the paper (Table 3; the official README has no table)
_PUBLISHED = {
    ("tiny", False, 240): 73.4, ("small", False, 240): 81.0, ("base", False, 240): 82.2,
    ("9", False, 240): 73.9, ("15", False, 240): 81.5, ("18", False, 240): 82.5,
    ("9", True, 240): 77.1, ("15", True, 240): 82.3, ("18", True, 240): 82.8,
    ("15", True, 408): 83.5, ("18", True, 408): 83.9,
}

for (_size, _dagger, _res), _top1 in _PUBLISHED.items():
    _embed, _block, _heads, _mlp = _SIZES[_size]
    _small = 224 if _res == 240 else 384  # the large-patch branch's size
    _official = f"crossvit_{_size}{'_dagger' if _dagger else ''}_{_small}"
    register_variant(Variant(
        name=f"crossvit_{_size}{'_dagger' if _dagger else ''}_{_res}.in1k",
        architecture="crossvit",
        config=dict(image_size=[_res, _small], patch_size=[12, 16], embed_dim=_embed, depth=[_block] * 3,
                    num_heads=_heads, mlp_ratio=_mlp, qkv_bias=True, multi_conv=_dagger, num_labels=1000),
        preprocessing=eval_preprocessing(_res),
        dataset="imagenet-1k",
        top1=_top1,
        checkpoint=f"{_RELEASE}/{_official}.pth",
        notes=f"official name {_official} (named by its large-patch branch's {_small} px; timm and the zoo name "
              f"models by their {_res} px input)",
    ))

__all__ = ["CrossVitConfig", "CrossVitModel", "CrossVitForImageClassification", "CrossVitPreTrainedModel",
           "CrossVitImageProcessor", "CrossVitImageProcessorPil"]
