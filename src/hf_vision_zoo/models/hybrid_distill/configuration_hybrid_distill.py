"""Configuration of Hybrid Distillation ("Hybrid Distillation: Connecting Masked Autoencoders with Contrastive
Learners", Shi et al., ICLR 2024, https://arxiv.org/abs/2306.15876).

`HybridDistillConfig` is a `VitConfig` (the student, which reloads as a zoo ViT) plus the two frozen teachers and
the objective. Which values are the paper's and which are the zoo's choices: see `modeling_hybrid_distill`.
"""

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig

FEATURE_TARGET_NORMS = ("none", "l2", "whiten")
FEATURE_LOSS_TYPES = ("smoothl1", "l2", "l1")
RELATION_LOSS_TYPES = ("kl", "l2")
REDUNDANCY_SOURCES = ("teacher", "mim_teacher")


def _teacher_config_ok(value) -> bool:
    return value is None or (isinstance(value, dict) and isinstance(value.get("model_type"), str))


@strict
class HybridDistillConfig(VitConfig):
    r"""Hybrid Distill hyper-parameters (student defaults: ViT-B/16 at 224 px).

    teacher_name_or_path / teacher_config: the supervised or contrastive teacher T_c (e.g. a saved
        `CLIPVisionModel`, DeiT `ViTModel`), loaded with `AutoModel.from_pretrained` from a local folder, or built
        with random weights from a transformers config dict (tests). Its config is copied into `teacher_config`.
    mim_teacher_name_or_path / mim_teacher_config: the MIM teacher T_m (e.g. a saved `ViTMAEModel` or zoo
        `MaeModel`), same rules.
    feature_loss_weight / relation_loss_weight: alpha and beta of `alpha * L_feat + beta * L_rel` (paper: 1.0, 1.0).
    feature_target_norm: normalisation of T_c's last-layer tokens ("whiten" = parameter-free LayerNorm, as FD).
    feature_loss_type: "smoothl1", "l2" or "l1" between the projected student tokens and the target.
    relation_layers: 1-based student blocks whose attention maps imitate T_m's; None = every block but the last
        (the "intermediate layers").
    mim_teacher_layers: the T_m layer for each of `relation_layers`; None = the proportional layer
        `round(l * teacher_depth / student_depth)`.
    relation_loss_type: "kl" (KL(teacher || student) per attention row) or "l2" (squared error of the maps).
    mask_ratio_start / mask_ratio_end: the redundant-token ratio at progress 0 and 1 (linear in between).
    redundancy_source: whose last-layer [CLS] attention ranks the patches ("teacher" = T_c, or "mim_teacher").
    """

    model_type = "zoo_hybrid_distill"

    teacher_name_or_path: str | None = None
    teacher_config: dict | None = None
    mim_teacher_name_or_path: str | None = None
    mim_teacher_config: dict | None = None
    feature_loss_weight: float | int = 1.0
    relation_loss_weight: float | int = 1.0
    feature_target_norm: str = "whiten"
    feature_loss_type: str = "smoothl1"
    relation_layers: list[int] | None = None
    mim_teacher_layers: list[int] | None = None
    relation_loss_type: str = "kl"
    mask_ratio_start: float | int = 0.0
    mask_ratio_end: float | int = 0.5
    redundancy_source: str = "teacher"

    def validate_architecture(self):
        super().validate_architecture()
        if not self.class_token or self.num_register_tokens:
            raise ValueError("Hybrid Distill distils the [CLS] + patch tokens of the student: use class_token=True "
                             "and num_register_tokens=0")
        for name in ("teacher_config", "mim_teacher_config"):
            if not _teacher_config_ok(getattr(self, name)):
                raise ValueError(f"{name} must be a transformers config dict with a 'model_type' (e.g. "
                                 f"'clip_vision_model', 'vit', 'vit_mae', 'zoo_mae')")
        for name in ("feature_loss_weight", "relation_loss_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name, allowed in (("feature_target_norm", FEATURE_TARGET_NORMS), ("feature_loss_type", FEATURE_LOSS_TYPES),
                              ("relation_loss_type", RELATION_LOSS_TYPES), ("redundancy_source", REDUNDANCY_SOURCES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("mask_ratio_start", "mask_ratio_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        layers = self.relation_layers
        if layers is not None:
            if not layers or any(not 1 <= int(i) <= self.num_hidden_layers for i in layers):
                raise ValueError(f"relation_layers must be 1-based student blocks in [1, {self.num_hidden_layers}], "
                                 f"got {layers}")
        if self.mim_teacher_layers is not None:
            expected = len(layers) if layers is not None else max(self.num_hidden_layers - 1, 1)
            if len(self.mim_teacher_layers) != expected or min(self.mim_teacher_layers) < 1:
                raise ValueError(f"mim_teacher_layers needs one 1-based teacher layer per relation layer "
                                 f"({expected}), got {self.mim_teacher_layers}")

    @property
    def student_relation_layers(self) -> list[int]:
        """The 1-based student blocks with a relation loss."""
        if self.relation_layers is not None:
            return [int(i) for i in self.relation_layers]
        return list(range(1, self.num_hidden_layers)) or [1]


__all__ = ["HybridDistillConfig"]
