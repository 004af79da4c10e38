"""Hybrid Distillation: Connecting Masked Autoencoders with Contrastive Learners (Shi, Zhang, Wang, Li, Dai, Zou,
Xiong and Tian, ICLR 2024), https://arxiv.org/abs/2306.15876. No code was released (the authors' repository holds
only a README); the PDF could not be read here. This is implemented from the public descriptions gathered in
the project notes on paper 2 (METHODS.md §2: arXiv and ICLR abstracts, OpenReview reviews); everything else is a zoo
choice, listed below and exposed as a config field.

Stated by those sources:
- a ViT student is distilled from two frozen teachers at once: a supervised / contrastive teacher T_c (DeiT, CLIP),
  whose *feature maps* (final features) it imitates, for discrimination; and a MIM teacher T_m (MAE), whose *token
  relations* (attention maps) it imitates at *intermediate layers*, for attention diversity;
- total loss `alpha * L_feat + beta * L_rel` with alpha = beta = 1.0 (OpenReview reviewer quoting the paper; which
  weight multiplies which term is not stated, and both are 1);
- a *progressive redundant token masking* strategy drops tokens from the student's input to cut the distillation
  cost and avoid local optima; it masks less aggressively than MAE's 75 %.

Zoo choices (the paper's equations were not found), each with the reason:
1. L_feat (`feature_distillation_loss`): a linear head (`feature_head`) maps the student's final-normed [CLS] +
   visible patch tokens to T_c's width; the target is T_c's last-layer tokens at the same positions
   (`hidden_states[-1]`), whitened by a parameter-free LayerNorm (`feature_target_norm="whiten"`); smooth-L1
   distance averaged over tokens and channels (`feature_loss_type`). Why: this is the recipe of FD (Wei et al.,
   2022), the feature-distillation method the paper starts from; the head is needed when widths differ.
2. L_rel (`relation_distillation_loss`): token relations = softmax attention maps. For each pair (student block
   l, T_m layer m), T_m's map restricted to the student's tokens ([CLS] + visible patches) and renormalised per row
   (`select_relations`) is the target of the student's map: KL(teacher row || student row), summed over keys and
   averaged over queries, heads and images (`relation_loss_type="kl"`); per-head when the head counts match,
   head-averaged maps otherwise. L_rel is the mean over the pairs. Layers: every student block but the last
   (`relation_layers=None`), each paired with the proportional T_m layer `round(l * depth_m / depth_s)`.
   Why: attention rows are distributions, and KL is the usual distance for attention-map distillation; the
   restriction is needed because the student only sees its kept tokens; "every block but the last" is the
   widest reading of "intermediate layers" (the last block's output is already bound to T_c by L_feat).
3. Progressive redundant token masking (`redundant_token_mask`): the redundant patches are those with the smallest
   last-layer [CLS] attention of T_c (mean over heads; `redundancy_source`), computed on the intact image; the
   `N - int(N * (1 - r))` least attended (MAE's rounding) are dropped before the student's blocks (visible-only
   encoding, so they cost nothing). The ratio grows linearly with training progress, from `mask_ratio_start` (0)
   to `mask_ratio_end` (0.5): `set_progress(p)` sets `r = start + (end - start) * p` (`self.progress`, a plain
   attribute, 0 until the loop calls it, so a bare forward drops nothing). Why: [CLS] attention is the common
   token-importance score of attention-based masking/pruning; T_c's [CLS] is trained for discrimination (MAE's is
   not); a linear ramp is the simplest "progressive" schedule; 0.5 stays below MAE's 75 % as reported.
4. Both teachers see the intact image, as given to the student (no re-normalisation: give teachers trained with
   the student's normalisation, or pre-normalise); their patch grid on the student's input must equal the
   student's (checked at build time). Transformers' `ViTMAEModel` teachers get `mask_ratio=0` and ascending noise
   so that they keep every patch in patch order.

Not implemented: the paper's exact layer choice, loss forms and schedule (unknown), and any projection on the
relation side.

After pre-training, `AutoModel.from_pretrained(dir)` gives `HybridDistillModel` (a `VitModel`) and
`AutoModelForImageClassification` a classifier; teachers and the feature head are left out.
"""

import inspect
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers.masking import check_mask_ratio, masking_from_mask, num_visible_tokens
from ...modeling_utils import check_pixel_values
from ..maskalign.modeling_maskalign import build_teacher, normalize_target
from ..vit.modeling_vit import VitForImageClassification, VitModel, VitPreTrainedModel
from .configuration_hybrid_distill import HybridDistillConfig


def redundant_token_mask(importance: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """`(B, N)` bool, True = dropped: the `N - int(N * (1 - mask_ratio))` patches with the smallest `importance`
    (ties: the later patch is dropped first)."""
    check_mask_ratio(mask_ratio)
    if not isinstance(importance, torch.Tensor) or importance.ndim != 2:
        raise ValueError("importance must be a (batch, num_patches) tensor")
    keep = num_visible_tokens(importance.shape[1], mask_ratio)
    order = torch.argsort(importance, dim=1, descending=True, stable=True)
    mask = torch.ones(importance.shape, dtype=torch.bool, device=importance.device)
    return mask.scatter(1, order[:, :keep], False)


def feature_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target_norm: str = "whiten",
                              loss_type: str = "smoothl1") -> torch.Tensor:
    """L_feat between projected student tokens and T_c's tokens `(B, T, D)` (zoo choice 1)."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)} "
                         f"must have the same shape")
    target = normalize_target(teacher, target_norm)
    if loss_type == "smoothl1":
        return F.smooth_l1_loss(student, target)
    if loss_type == "l2":
        return F.mse_loss(student, target)
    if loss_type == "l1":
        return F.l1_loss(student, target)
    raise ValueError(f"unknown feature loss type {loss_type!r}")


def select_relations(attention: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows and columns `index` `(B, K)` of attention maps `(B, H, T, T)`, each row renormalised to sum to 1."""
    heads = attention.shape[1]
    rows = torch.gather(attention, 2, index[:, None, :, None].expand(-1, heads, -1, attention.shape[-1]))
    sub = torch.gather(rows, 3, index[:, None, None, :].expand(-1, heads, index.shape[1], -1))
    return sub / sub.sum(-1, keepdim=True).clamp_min(torch.finfo(sub.dtype).tiny)


def relation_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, loss_type: str = "kl") -> torch.Tensor:
    """L_rel between attention maps `(B, H_s, K, K)` and `(B, H_t, K, K)` (zoo choice 2)."""
    if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
        raise ValueError(f"student relations {tuple(student.shape)} and teacher relations {tuple(teacher.shape)} "
                         f"cover different tokens")
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    if loss_type == "l2":
        return F.mse_loss(student, teacher)
    if loss_type != "kl":
        raise ValueError(f"unknown relation loss type {loss_type!r}")
    tiny = torch.finfo(student.dtype).tiny
    return (teacher * (teacher.clamp_min(tiny).log() - student.clamp_min(tiny).log())).sum(-1).mean()


@dataclass
class HybridDistillForPreTrainingOutput(ModelOutput):
    r"""
    loss: `feature_loss_weight * feature_loss + relation_loss_weight * relation_loss`.
    feature_loss / relation_loss: L_feat and L_rel.
    mask: `(batch, num_patches)`, 1 for the redundant patches dropped from the student, 0 for the encoded ones.
    ids_keep: `(batch, visible)`, the patch index of each encoded student token.
    token_importance: `(batch, num_patches)` the [CLS] attention that ranked the patches (None with a given mask).
    student_features / teacher_features: the projected student tokens and the (normalised) T_c targets.
    hidden_states / attentions: the student's (encoded tokens only).
    """

    loss: torch.FloatTensor | None = None
    feature_loss: torch.FloatTensor | None = None
    relation_loss: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_keep: torch.LongTensor | None = None
    token_importance: torch.FloatTensor | None = None
    student_features: torch.FloatTensor | None = None
    teacher_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class HybridDistillPreTrainedModel(VitPreTrainedModel):
    config: HybridDistillConfig
    config_class = HybridDistillConfig
    # a pre-training folder also holds both teachers and the feature head
    _keys_to_ignore_on_load_unexpected = [r"^teacher\.", r"^mim_teacher\.", r"^feature_head\."]


class HybridDistillModel(HybridDistillPreTrainedModel, VitModel):
    """The Hybrid Distill student: a `VitModel`."""


class HybridDistillForImageClassification(HybridDistillPreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning a Hybrid Distill student."""


def build_frozen_teacher(name_or_path: str | None, teacher_config: dict | None, what: str):
    """A frozen eval-mode transformers model from a local folder or a config dict (see `build_teacher`); returns it
    and its config as a dict."""
    if name_or_path is None and teacher_config is None:
        raise ValueError(f"Hybrid Distill needs a {what}: set its *_name_or_path (a local folder with a transformers "
                         f"vision model saved with save_pretrained) or its *_config (a config dict)")
    spec = SimpleNamespace(teacher_name_or_path=name_or_path, teacher_config=teacher_config)
    teacher = build_teacher(spec)
    if getattr(teacher.config, "model_type", "") == "vit_mae":  # transformers' ViTMAE masks at random by default
        teacher.config.mask_ratio = 0.0
    return teacher, spec.teacher_config


class HybridDistillForPreTraining(HybridDistillPreTrainedModel):
    """Hybrid Distill: student ViT + frozen T_c (feature maps) + frozen T_m (token relations) + progressive
    redundant token masking (see module doc). Call `set_progress(p)` before every step."""

    def __init__(self, config: HybridDistillConfig):
        super().__init__(config)
        self.vit = HybridDistillModel(config, add_pooling_layer=False)
        self.teacher, config.teacher_config = build_frozen_teacher(
            config.teacher_name_or_path, config.teacher_config, "supervised/contrastive teacher (teacher_*)")
        self.mim_teacher, config.mim_teacher_config = build_frozen_teacher(
            config.mim_teacher_name_or_path, config.mim_teacher_config, "MIM teacher (mim_teacher_*)")
        self._teacher_kwargs = {name: self._check_teacher(teacher, name)
                                for name, teacher in (("teacher", self.teacher), ("mim_teacher", self.mim_teacher))}
        self.relation_pairs = self._relation_pairs(int(self.mim_teacher.config.num_hidden_layers))
        self.feature_head = nn.Linear(config.hidden_size, int(self.teacher.config.hidden_size))
        self.progress = 0.0  # fraction of training done (plain attribute, not saved), see set_progress
        self.post_init()

    def _check_teacher(self, teacher: nn.Module, name: str) -> dict:
        """Fail unless the teacher's patch grid on the student's input equals the student's; returns the extra
        forward arguments the teacher needs."""
        teacher_config = teacher.config
        patch = getattr(teacher_config, "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[0] if len(set(patch)) == 1 else None
        if not isinstance(patch, int):
            raise ValueError(f"the {name} ({type(teacher_config).__name__}) has no integer patch_size; Hybrid "
                             f"Distill needs ViT-like teachers whose patch grid matches the student's")
        size = self.config.image_size_2d
        grid = (size[0] // patch, size[1] // patch)
        if size[0] % patch or size[1] % patch or grid != tuple(self.config.grid_size):
            raise ValueError(
                f"{name} patch grid {grid[0]}x{grid[1]} (patch_size {patch} on the student's {size[0]}x{size[1]} "
                f"input) doesn't match the student's {self.config.grid_size[0]}x{self.config.grid_size[1]} "
                f"(patch_size {self.config.patch_size}); use a teacher with the student's patch size")
        kwargs = {}
        native = getattr(teacher_config, "image_size", None)
        native = (native, native) if isinstance(native, int) else tuple(native or size)
        if tuple(native) != tuple(size):
            if "interpolate_pos_encoding" not in inspect.signature(teacher.forward).parameters:
                raise ValueError(f"the {name} was built for {native} images and cannot resize its position "
                                 f"embeddings to the student's {size}")
            kwargs["interpolate_pos_encoding"] = True
        return kwargs

    def _relation_pairs(self, mim_depth: int) -> list[tuple[int, int]]:
        student_layers = self.config.student_relation_layers
        depth = self.config.num_hidden_layers
        teacher_layers = self.config.mim_teacher_layers or [
            max(1, min(mim_depth, round(layer * mim_depth / depth))) for layer in student_layers]
        if max(teacher_layers) > mim_depth:
            raise ValueError(f"mim_teacher_layers {teacher_layers} exceed the MIM teacher's {mim_depth} layers")
        return list(zip(student_layers, [int(t) for t in teacher_layers]))

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then both teachers are frozen again."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        for teacher in (model.teacher, model.mim_teacher):
            teacher.requires_grad_(False)
            teacher.eval()
        return loaded

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen teachers: no dropout, whatever the student does
        self.mim_teacher.eval()
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.patch_embed

    def mask_ratio_at(self, progress: float | None = None) -> float:
        """The redundant-token ratio at `progress` (default: the current one), linear from start to end."""
        progress = self.progress if progress is None else progress
        start, end = self.config.mask_ratio_start, self.config.mask_ratio_end
        return float(start + (end - start) * progress)

    def set_progress(self, progress: float) -> None:
        """Set the fraction of training done, in [0, 1] (the pre-training loop calls it before every step)."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress is the fraction of training done, a number in [0, 1]; got {progress!r}")
        self.progress = float(progress)

    @torch.no_grad()
    def teacher_forward(self, name: str, pixel_values: torch.Tensor):
        """Run a frozen teacher (`"teacher"` or `"mim_teacher"`) on the intact images; returns its output (hidden
        states and attentions) and its number of prefix tokens."""
        teacher = getattr(self, name)
        teacher.eval()
        kwargs = dict(self._teacher_kwargs[name])
        num_patches = self.config.num_patches
        if getattr(teacher.config, "model_type", "") == "vit_mae":  # ascending noise: patch order, nothing removed
            kwargs["noise"] = torch.arange(num_patches, device=pixel_values.device, dtype=pixel_values.dtype).expand(
                pixel_values.shape[0], -1)
        out = teacher(pixel_values=pixel_values, output_hidden_states=True, output_attentions=True,
                      return_dict=True, **kwargs)
        prefix = out.hidden_states[-1].shape[1] - num_patches
        if prefix < 1:
            raise ValueError(f"the {name} returned {out.hidden_states[-1].shape[1]} tokens for {num_patches} student "
                             f"patches; its patch grid must match the student's and include a [CLS] token")
        return out, prefix

    def _check_input(self, pixel_values, mask) -> None:
        check_pixel_values(pixel_values, self.config.num_channels)
        size = tuple(pixel_values.shape[-2:])
        if size != tuple(self.config.image_size_2d):
            raise ValueError(f"Input image size {size[0]}x{size[1]} doesn't match the model's image_size "
                             f"{self.config.image_size_2d[0]}x{self.config.image_size_2d[1]} (the student and teacher "
                             f"patch grids are built for it); resize the images with the image processor")
        if mask is not None:
            masking_from_mask(mask, pixel_values.shape[0], self.config.num_patches)  # shape, dtype, equal counts

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                mask_ratio: float | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> HybridDistillForPreTrainingOutput:
        r"""
        mask: `(batch, num_patches)` bool, True = dropped from the student (same count per image); overrides the
            redundant-token masking.
        mask_ratio: overrides the scheduled ratio `mask_ratio_at(self.progress)`.
        """
        self._check_input(pixel_values, mask)
        if mask is not None and mask_ratio is not None:
            raise ValueError("pass either an explicit mask or mask_ratio, not both")
        config = self.config
        teacher_out, teacher_prefix = self.teacher_forward("teacher", pixel_values)
        mim_out, mim_prefix = self.teacher_forward("mim_teacher", pixel_values)
        importance = None
        if mask is None:
            ratio = self.mask_ratio_at() if mask_ratio is None else check_mask_ratio(mask_ratio)
            source, prefix = ((teacher_out, teacher_prefix) if config.redundancy_source == "teacher"
                              else (mim_out, mim_prefix))
            importance = source.attentions[-1][:, :, 0, prefix:].mean(1)
            mask = redundant_token_mask(importance, ratio)
        student = self.vit(pixel_values, mask=mask, output_hidden_states=output_hidden_states,
                           output_attentions=True, return_dict=True)
        ids_keep = student.ids_keep
        cls_index = ids_keep.new_zeros(ids_keep.shape[0], 1)
        # L_feat: [CLS] + encoded patches against T_c's last-layer tokens at the same positions
        teacher_index = torch.cat([cls_index, teacher_prefix + ids_keep], dim=1)
        teacher_tokens = teacher_out.hidden_states[-1]
        teacher_tokens = torch.gather(teacher_tokens, 1,
                                      teacher_index[..., None].expand(-1, -1, teacher_tokens.shape[-1]))
        student_features = self.feature_head(student.last_hidden_state)
        feature_loss = feature_distillation_loss(student_features, teacher_tokens, config.feature_target_norm,
                                                 config.feature_loss_type)
        # L_rel: the student's attention maps against T_m's, restricted to the same tokens
        mim_index = torch.cat([cls_index, mim_prefix + ids_keep], dim=1)
        pairs = self.relation_pairs
        relation_loss = sum(relation_distillation_loss(student.attentions[s - 1],
                                                       select_relations(mim_out.attentions[t - 1], mim_index),
                                                       config.relation_loss_type) for s, t in pairs) / len(pairs)
        loss = config.feature_loss_weight * feature_loss + config.relation_loss_weight * relation_loss
        return HybridDistillForPreTrainingOutput(
            loss=loss, feature_loss=feature_loss, relation_loss=relation_loss,
            mask=mask.to(pixel_values.dtype), ids_keep=ids_keep, token_importance=importance,
            student_features=student_features, teacher_features=normalize_target(teacher_tokens,
                                                                                 config.feature_target_norm),
            hidden_states=student.hidden_states,
            attentions=student.attentions if output_attentions else None)


__all__ = ["HybridDistillPreTrainedModel", "HybridDistillModel", "HybridDistillForImageClassification",
           "HybridDistillForPreTraining", "HybridDistillForPreTrainingOutput", "build_frozen_teacher",
           "feature_distillation_loss", "relation_distillation_loss", "redundant_token_mask", "select_relations"]
