"""Configuration of MaskAlign, "Stare at What You See: Masked Image Modeling without Reconstruction" (Xue et al.,
CVPR 2023, https://arxiv.org/abs/2211.08887; official code https://github.com/OpenDriveLab/maskalign).

`MaskAlignConfig` is a `VitConfig` (the student, which reloads as a zoo ViT) plus the pre-training objective. The
objective's field names and values are the official `main_pretrain.py` arguments (`mask_ratio`, `mask_type`,
`loss_weights`, `fusion_type`, `target_norm`, `loss_type`, `head_type`); the teacher is any transformers vision
model, given as a local folder (`teacher_name_or_path`) or as a config dict (`teacher_config`, random weights).
"""

import re

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig

MASK_TYPES = ("attention", "random")
FUSION_TYPES = ("simple", "linear", "sum")
TARGET_NORMS = ("none", "l2", "whiten", "bn")
LOSS_TYPES = ("l2", "l1", "smoothl1")
HEAD_TYPES = ("linear", "norm_linear", "mlp", "mlp2")
_LOSS_WEIGHTS = re.compile(r"^(mean|out|linear_decay|top\d+|mid\d+)$")
# CLIP's input normalisation (openai/CLIP); the student sees ImageNet-normalised images
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@strict
class MaskAlignConfig(VitConfig):
    r"""MaskAlign hyper-parameters; the defaults are the official README recipe (ViT-B/16 student, CLIP-B/16
    teacher): `--mask_type attention --mask_ratio 0.7 --loss_weights top5 --fusion_type linear --target_norm whiten
    --loss_type smoothl1 --head_type linear --drop_path 0.1`.

    position_embedding_type: "sincos", the student's fixed 2-D sin-cos table (official `pos_embed`).
    mask_ratio: fraction of the patches hidden from the student, in [0, 1).
    mask_type: "attention" (patches sampled without replacement with probability proportional to the teacher's
        last-layer [CLS] attention, averaged over heads, stay visible) or "random" (MAE's uniform masking).
    loss_weights: which aligned layers count: "mean" (all, equal), "out" (last), "linear_decay" (weight i / sum),
        "topK" (the last K, 1/K each) or "midK" (layer K only).
    fusion_type: Dynamic Alignment's mixing of the student layers before the heads: "simple" (none), "linear" (a
        learnable depth x depth matrix initialised to I + 0.01, student depth must equal the teacher's) or "sum"
        (teacher_depth x depth, initialised to 1/depth).
    head_type: the per-teacher-layer adaptor: "linear", "norm_linear", "mlp" (linear-GELU-linear) or "mlp2"
        (linear-LayerNorm-linear).
    target_norm: normalisation of the teacher features: "none", "l2", "whiten" (parameter-free LayerNorm) or
        "bn" (global standardisation).
    loss_type: "l2", "l1" or "smoothl1" (2 x smooth-L1, as the official code).
    teacher_name_or_path: a local folder with a transformers vision model (CLIPVisionModel, ViTModel, Dinov2Model,
        ...) loaded with `AutoModel.from_pretrained`; its config is copied into `teacher_config` when the model is
        built, so a saved pre-training folder (which holds the teacher weights) reloads without it.
    teacher_config: a transformers config as a dict (with "model_type"), for a teacher with random weights (tests).
    teacher_image_size: the teacher's input size (None = the student's input, as in the official code except the
        CLIP-L/14 teacher at 196 px); its patch grid must equal the student's.
    image_mean / image_std: the normalisation of the images the model is given (ImageNet, like the student's
        image processor); the teacher sees them re-normalised with teacher_image_mean / teacher_image_std.
    teacher_image_mean / teacher_image_std: None = CLIP's constants for a CLIP teacher, else no re-normalisation
        (as the official code does for its DINO teacher).
    """

    model_type = "zoo_maskalign"

    position_embedding_type: str = "sincos"
    drop_path_rate: float | int = 0.1
    mask_ratio: float | int = 0.7
    mask_type: str = "attention"
    loss_weights: str = "top5"
    fusion_type: str = "linear"
    target_norm: str = "whiten"
    loss_type: str = "smoothl1"
    head_type: str = "linear"
    teacher_name_or_path: str | None = None
    teacher_config: dict | None = None
    teacher_image_size: int | list[int] | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    teacher_image_mean: list[float] | None = None
    teacher_image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STD)
        if isinstance(self.teacher_image_size, (list, tuple)):
            self.teacher_image_size = [int(s) for s in self.teacher_image_size]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        if isinstance(self.mask_ratio, bool) or not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        for name, allowed in (("mask_type", MASK_TYPES), ("fusion_type", FUSION_TYPES),
                              ("target_norm", TARGET_NORMS), ("loss_type", LOSS_TYPES), ("head_type", HEAD_TYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not _LOSS_WEIGHTS.match(str(self.loss_weights)):
            raise ValueError(f"loss_weights must be 'mean', 'out', 'linear_decay', 'top<K>' or 'mid<K>', "
                             f"got {self.loss_weights!r}")
        if not self.class_token or self.num_register_tokens:
            raise ValueError("MaskAlign aligns the student's [CLS] token with the teacher's: use class_token=True "
                             "and num_register_tokens=0")
        if self.teacher_config is not None and not isinstance(self.teacher_config.get("model_type"), str):
            raise ValueError("teacher_config must be a transformers config dict with a 'model_type' "
                             "(e.g. 'clip_vision_model', 'vit', 'dinov2')")
        if self.teacher_image_size is not None:
            sizes = [self.teacher_image_size] if isinstance(self.teacher_image_size, int) else self.teacher_image_size
            if len(sizes) not in (1, 2) or min(sizes) < 1:
                raise ValueError(f"teacher_image_size must be a positive int or [height, width], "
                                 f"got {self.teacher_image_size}")
        for name in ("image_mean", "image_std", "teacher_image_mean", "teacher_image_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.num_channels:
                raise ValueError(f"{name} needs one value per channel ({self.num_channels}), got {value}")
            if value is not None and name.endswith("std") and min(value) <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if (self.teacher_image_mean is None) != (self.teacher_image_std is None):
            raise ValueError("give both teacher_image_mean and teacher_image_std, or neither")

    @property
    def teacher_image_size_2d(self) -> tuple[int, int] | None:
        size = self.teacher_image_size
        if size is None:
            return None
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))


__all__ = ["MaskAlignConfig"]
