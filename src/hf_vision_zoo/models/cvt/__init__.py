"""CvT (paper 21 of the catalog): config, models, image processors and the published variants."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_cvt import CvtConfig
from .image_processing_cvt import CvtImageProcessor, CvtImageProcessorPil
from .modeling_cvt import CvtBackbone, CvtForImageClassification, CvtModel, CvtPreTrainedModel

register_architecture(Architecture(
    name="cvt",
    config_class=CvtConfig,
    model_classes={"feature-extraction": CvtModel, "image-classification": CvtForImageClassification,
                   "backbone": CvtBackbone},
    image_processor_classes={"torchvision": CvtImageProcessor, "pil": CvtImageProcessorPil},
    paper="CvT: Introducing Convolutions to Vision Transformers",
    paper_url="https://arxiv.org/abs/2103.15808",
    official_repo="https://github.com/leoxiaobin/CvT",
    license="mit",
    display_name="CvT",
    # Two departures from the published layout, both covered by tests/models/cvt instead: k/v stride 1 (the common
    # tester expects square attention maps) and no class token (with one, the last block's query convolution only
    # feeds patch tokens the classifier never reads, so its gradient is exactly zero - true of the official model too)
    tiny_config=dict(image_size=32, embed_dim=[16, 32], num_heads=[1, 2], depth=[1, 2], patch_sizes=[7, 3],
                     patch_stride=[4, 2], patch_padding=[2, 1], mlp_ratio=[4.0, 4.0], attention_drop_rate=[0.0, 0.0],
                     drop_rate=[0.0, 0.0], drop_path_rate=[0.0, 0.0], qkv_bias=[True, True], cls_token=[False, False],
                     qkv_projection_method=["dw_bn", "dw_bn"], kernel_qkv=[3, 3], padding_kv=[1, 1],
                     stride_kv=[1, 1], padding_q=[1, 1], stride_q=[1, 1], num_labels=5),
))

_SIZES = {  # embed_dim, num_heads, depth, last stage's drop path (official experiments/imagenet/cvt/*.yaml)
    "13": ([64, 192, 384], [1, 3, 6], [1, 2, 10], 0.1),
    "21": ([64, 192, 384], [1, 3, 6], [1, 4, 16], 0.1),
    "w24": ([192, 768, 1024], [3, 12, 16], [2, 2, 20], 0.3),
}
# The official README links one OneDrive folder holding every checkpoint; the file of each variant is in `notes`.
_MODEL_ZOO = "https://1drv.ms/u/s!AhIXJn_J-blW9RzF3rMW7SsLHa8h?e=blQ0Al"
# (size, resolution, tag) -> (ImageNet-1k top-1 from the official README, checkpoint file in the model zoo). The
# README's "CvT-32" rows (32M params, 384 px) are CvT-21: the repo's cvt-21-384x384.yaml, 31.6M parameters.
_PUBLISHED = {
    ("13", 224, "in1k"): (81.6, "CvT-13-224x224-IN-1k.pth"),
    ("21", 224, "in1k"): (82.5, "CvT-21-224x224-IN-1k.pth"),
    ("13", 384, "in1k"): (83.0, "CvT-13-384x384-IN-1k.pth"),
    ("21", 384, "in1k"): (83.3, "CvT-21-384x384-IN-1k.pth"),
    ("13", 384, "in22k_ft_in1k"): (83.3, "CvT-13-384x384-IN-22k.pth"),
    ("21", 384, "in22k_ft_in1k"): (84.9, "CvT-21-384x384-IN-22k.pth"),
    ("w24", 384, "in22k_ft_in1k"): (87.6, "CvT-w24-384x384-IN-22k.pth"),
}

for (_size, _res, _tag), (_top1, _file) in _PUBLISHED.items():
    _dims, _heads, _depth, _dpr = _SIZES[_size]
    # official eval transform: 224 models resize the short side to int(224 / 0.875) and centre-crop; 384 models
    # resize straight to 384 (TEST.CENTER_CROP: False); bicubic both
    _pre = ({"size": {"shortest_edge": int(224 / 0.875)}, "crop_size": {"height": 224, "width": 224},
             "do_center_crop": True}
            if _res == 224 else {"size": {"height": _res, "width": _res}, "do_center_crop": False})
    register_variant(Variant(
        name=f"cvt_{_size}_{_res}.{_tag}",
        architecture="cvt",
        config=dict(image_size=_res, embed_dim=_dims, num_heads=_heads, depth=_depth,
                    drop_path_rate=[0.0, 0.0, _dpr], num_labels=1000),
        preprocessing=_pre,
        dataset="imagenet-22k -> imagenet-1k" if _tag.startswith("in22k") else "imagenet-1k",
        top1=_top1,
        checkpoint=_MODEL_ZOO,
        notes=f"official file {_file} (trained with QuickGELU, the config's default hidden_act)",
    ))

__all__ = ["CvtConfig", "CvtModel", "CvtForImageClassification", "CvtBackbone", "CvtPreTrainedModel",
           "CvtImageProcessor", "CvtImageProcessorPil"]
