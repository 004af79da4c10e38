"""Stare at What You See: Masked Image Modeling without Reconstruction (MaskAlign; Xue et al., CVPR 2023).

Paper: https://arxiv.org/abs/2211.08887 - official code: https://github.com/OpenDriveLab/maskalign (Apache-2.0,
formerly OpenPerceptionX/maskalign; `models_pretrain.py`).

`MaskAlignForPreTraining`:
- a frozen teacher (any transformers vision model: `CLIPVisionModel`, `ViTModel`, `Dinov2Model`, ...) sees the
  intact image (re-normalised from ImageNet to the teacher's statistics, e.g. CLIP's) and gives every layer's
  tokens plus its last layer's attention;
- attention-guided masking (§3.2): the patches kept visible are drawn without replacement with probability
  proportional to the teacher's last-layer [CLS] attention (mean over heads), i.e. salient patches stay visible;
- the student, the zoo ViT, encodes ONLY the visible patches (plus [CLS]); no decoder, no reconstruction;
- Dynamic Alignment (§3.3): the student's per-block outputs are mixed by a learnable matrix (`distill_weights`,
  `fusion_type`) and mapped by one adaptor per teacher layer (`distill_heads`) onto the teacher's normalised
  features of the same (visible) tokens; the loss is the (2 x smooth-L1 / L1 / L2) distance, averaged over the
  layers chosen by `loss_weights` (the last 5 by default).
Proven equal to the official code (loss, aligned student and teacher features, [CLS] attention) by
`tests/models/maskalign/test_official_maskalign.py`.

Differences from the official code:
- the official `torch.multinomial` draw is replaced by the Gumbel-top-k trick (keep the `int(N * (1 - r))` patches
  with the largest `log(attention) + Gumbel(noise)`), which samples the same distribution (Kool et al., 2019) but
  takes an explicit `noise` so masks are reproducible across devices; an explicit `mask` overrides both;
- visible tokens are encoded in ascending patch order (the official code keeps the sampling order); attention and
  the mean losses are invariant to it;
- the teacher is any transformers vision model (the official code hard-codes CLIP-B/16, CLIP-L/14 and DINO-B/16);
  its prefix tokens ([CLS] + registers) are told apart from the patches by the patch count;
- the student's final LayerNorm (unused by the objective, so never updated by the official code either) is frozen
  during pre-training.
"""

import inspect
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers.masking import check_mask_ratio, masking_from_mask, num_visible_tokens, random_masking
from ...modeling_utils import check_pixel_values
from ..mae.modeling_mae import MaePreTrainedModel
from ..vit.modeling_vit import VitForImageClassification, VitModel
from .configuration_maskalign import CLIP_MEAN, CLIP_STD, MaskAlignConfig


def attention_guided_mask(importance: torch.Tensor, mask_ratio: float,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
    """`(B, N)` bool mask (True = hidden) keeping `int(N * (1 - mask_ratio))` patches drawn without replacement
    with probability proportional to `importance` (B, N) >= 0 (Gumbel-top-k with uniform `noise` in (0, 1))."""
    check_mask_ratio(mask_ratio)
    if importance.ndim != 2:
        raise ValueError(f"importance must have shape (batch, num_patches), got {tuple(importance.shape)}")
    if noise is None:
        noise = torch.rand(importance.shape, device=importance.device)
    elif tuple(noise.shape) != tuple(importance.shape):
        raise ValueError(f"noise must have shape {tuple(importance.shape)} (one value per patch), "
                         f"got {tuple(noise.shape)}")
    tiny = torch.finfo(torch.float32).tiny
    uniform = noise.float().clamp(tiny, 1.0 - 1e-7)
    keys = importance.float().clamp_min(tiny).log() - (-uniform.log()).log()
    keep = torch.topk(keys, num_visible_tokens(importance.shape[1], mask_ratio), dim=1).indices
    mask = torch.ones(importance.shape, dtype=torch.bool, device=importance.device)
    return mask.scatter(1, keep, False)


@dataclass
class MaskAlignForPreTrainingOutput(ModelOutput):
    r"""
    loss: the alignment loss (weighted over the teacher layers chosen by `loss_weights`).
    mask: `(batch, num_patches)`, 1 for patches hidden from the student, 0 for visible ones.
    ids_keep: `(batch, visible)`, the patch index of each visible (encoded) token.
    teacher_attention: `(batch, num_patches)`, the teacher's last-layer [CLS] attention to each patch (mean over
        heads), which drives attention-guided masking (None when the mask was given or drawn at random).
    student_features: per aligned teacher layer, the adapted student tokens `(batch, 1 + visible, teacher_dim)`.
    teacher_features: per teacher layer, the normalised teacher tokens at the same positions.
    hidden_states / attentions: the student's (visible tokens only).
    """

    loss: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_keep: torch.LongTensor | None = None
    teacher_attention: torch.FloatTensor | None = None
    student_features: tuple[torch.FloatTensor, ...] | None = None
    teacher_features: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MaskAlignPreTrainedModel(MaePreTrainedModel):
    """The official initialisation is MAE's (xavier-uniform linear layers, N(0, 0.02) [CLS], fixed sin-cos)."""

    config: MaskAlignConfig
    config_class = MaskAlignConfig
    _no_split_modules = ["VitEmbeddings", "TransformerBlock"]
    # a pre-training folder also holds the teacher and the Dynamic Alignment weights
    _keys_to_ignore_on_load_unexpected = [r"^teacher\.", r"^distill_"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, MaskAlignForPreTraining) and module.distill_weights is not None:
            init.copy_(module.distill_weights, module.initial_distill_weights())


class MaskAlignModel(MaskAlignPreTrainedModel, VitModel):
    """The MaskAlign student: a `VitModel` (encodes only the visible patches when given `mask`/`noise`)."""


class MaskAlignForImageClassification(MaskAlignPreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning a MaskAlign student (the official recipe: `pooling="mean"`,
    `position_embedding_type="learned"`, drop_path 0.1)."""


def build_teacher(config: MaskAlignConfig) -> nn.Module:
    """The frozen teacher: `AutoModel.from_pretrained(teacher_name_or_path)` (its config is copied into
    `config.teacher_config`), or `AutoModel.from_config(teacher_config)` with random weights. Built with eager
    attention, which attention-guided masking reads. Inside `from_pretrained` (meta device) only the structure is
    built: the teacher weights are part of the pre-training checkpoint."""
    path, teacher_config = config.teacher_name_or_path, config.teacher_config
    if path is None and teacher_config is None:
        raise ValueError("MaskAlign pre-training needs a teacher: set config.teacher_name_or_path (a local folder "
                         "with a transformers vision model, e.g. a saved CLIPVisionModel) or config.teacher_config")
    building_on_meta = torch.empty(0).device.type == "meta"
    if path is not None and not building_on_meta and (teacher_config is None or os.path.isdir(path)):
        if not os.path.isdir(path):
            raise ValueError(f"teacher_name_or_path {path!r} is not a local folder; save the teacher with "
                             f"save_pretrained (e.g. CLIPVisionModel.from_pretrained(...).save_pretrained(dir))")
        loaded_config = AutoConfig.from_pretrained(path)
        if hasattr(loaded_config, "vision_config"):
            raise ValueError(f"{path} holds a multi-modal {type(loaded_config).__name__}; save its vision tower "
                             f"(e.g. CLIPVisionModel.from_pretrained(path).save_pretrained(dir)) and use that")
        teacher = AutoModel.from_pretrained(path, attn_implementation="eager")
        config.teacher_config = teacher.config.to_dict()
    else:
        kwargs = dict(teacher_config)
        teacher = AutoModel.from_config(AutoConfig.for_model(kwargs.pop("model_type"), **kwargs),
                                        attn_implementation="eager")
    teacher.requires_grad_(False)
    return teacher.eval()


def _adaptor(head_type: str, dim: int, target_dim: int, eps: float) -> nn.Module:
    """One Dynamic Alignment head (official `distill_heads` layouts)."""
    if head_type == "linear":
        return nn.Linear(dim, target_dim)
    if head_type == "norm_linear":
        return nn.Sequential(nn.LayerNorm(dim, eps=eps), nn.Linear(dim, target_dim))
    middle = nn.GELU() if head_type == "mlp" else nn.LayerNorm(dim, eps=eps)
    return nn.Sequential(nn.Linear(dim, dim), middle, nn.Linear(dim, target_dim))


def layer_weights(loss_weights: str, num_layers: int) -> list[float]:
    """The per-layer loss weights of the official `forward_loss`."""
    if loss_weights == "mean":
        return [1.0 / num_layers] * num_layers
    if loss_weights == "out":
        return [0.0] * (num_layers - 1) + [1.0]
    if loss_weights == "linear_decay":
        total = sum(range(num_layers))
        return [i / total for i in range(num_layers)]
    k = int(loss_weights[3:])
    if loss_weights.startswith("top"):
        return [0.0] * (num_layers - k) + [1.0 / k] * k
    return [0.0] * k + [1.0] + [0.0] * (num_layers - k - 1)


def normalize_target(features: torch.Tensor, target_norm: str) -> torch.Tensor:
    """The official `target_norm` of the teacher features."""
    if target_norm == "l2":
        return F.normalize(features, dim=-1)
    if target_norm == "whiten":
        return F.layer_norm(features, features.shape[-1:])
    if target_norm == "bn":
        return (features - features.mean()) / (features.var() + 1.0e-6) ** 0.5
    return features


class MaskAlignForPreTraining(MaskAlignPreTrainedModel):
    """MaskAlign pre-training: visible-only student, frozen teacher, Dynamic Alignment (see module doc)."""

    def __init__(self, config: MaskAlignConfig):
        super().__init__(config)
        self.vit = MaskAlignModel(config, add_pooling_layer=False)
        for unused in (self.vit.layernorm, self.vit.fc_norm):  # the objective reads the blocks' outputs only
            if unused is not None:
                unused.requires_grad_(False)
        self.teacher = build_teacher(config)
        teacher_config = self.teacher.config
        self.teacher_depth = int(teacher_config.num_hidden_layers)
        self._check_teacher_grid(teacher_config)
        depth = config.num_hidden_layers
        self._check_layers(depth, self.teacher_depth)
        self.distill_heads = nn.ModuleList(
            _adaptor(config.head_type, config.hidden_size, int(teacher_config.hidden_size), config.layer_norm_eps)
            for _ in range(self.teacher_depth))
        self.distill_weights = None
        if config.fusion_type != "simple":
            rows = depth if config.fusion_type == "linear" else self.teacher_depth
            self.distill_weights = nn.Parameter(torch.zeros(rows, depth))
        forward_args = inspect.signature(self.teacher.forward).parameters
        self._teacher_interpolates = "interpolate_pos_encoding" in forward_args
        self.post_init()

    def _check_teacher_grid(self, teacher_config) -> None:
        patch = getattr(teacher_config, "patch_size", None)
        if not isinstance(patch, int):
            raise ValueError(f"the teacher ({type(teacher_config).__name__}) has no integer patch_size; MaskAlign "
                             f"needs a ViT-like teacher whose patch grid matches the student's")
        size = self.config.teacher_image_size_2d or self.config.image_size_2d
        grid = (size[0] // patch, size[1] // patch)
        if size[0] % patch or size[1] % patch or grid != tuple(self.config.grid_size):
            raise ValueError(
                f"teacher patch grid {grid[0]}x{grid[1]} (input {size[0]}x{size[1]}, patch_size {patch}) doesn't "
                f"match the student's {self.config.grid_size[0]}x{self.config.grid_size[1]} (image_size "
                f"{self.config.image_size}, patch_size {self.config.patch_size}); set teacher_image_size so that "
                f"teacher_image_size / {patch} equals the student grid (e.g. 196 px for a patch-14 teacher)")

    def _check_layers(self, depth: int, teacher_depth: int) -> None:
        fusion = self.config.fusion_type
        if fusion == "linear" and depth != teacher_depth:
            raise ValueError(f"fusion_type='linear' needs as many student blocks as teacher layers, got "
                             f"{depth} and {teacher_depth}; use fusion_type='sum'")
        if fusion == "simple" and depth > teacher_depth:
            raise ValueError(f"fusion_type='simple' aligns student block i with teacher layer i: the student "
                             f"({depth} blocks) cannot be deeper than the teacher ({teacher_depth} layers)")
        aligned = teacher_depth if fusion == "sum" else depth
        weights = self.config.loss_weights
        if weights[:3] in ("top", "mid") and not (int(weights[3:]) >= (1 if weights[:3] == "top" else 0)
                                                   and int(weights[3:]) <= aligned - (weights[:3] == "mid")):
            raise ValueError(f"loss_weights={weights!r} is out of range for {aligned} aligned layers")
        if weights == "linear_decay" and aligned < 2:
            raise ValueError("loss_weights='linear_decay' needs at least 2 aligned layers")

    def initial_distill_weights(self) -> torch.Tensor:
        """Official init: I + 0.01 ("linear") or 1 / depth everywhere ("sum")."""
        rows, depth = self.distill_weights.shape
        if self.config.fusion_type == "linear":
            return torch.eye(depth) + 0.01
        return torch.ones(rows, depth) / depth

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then the teacher is frozen again (loading re-creates parameters)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.teacher.requires_grad_(False)
        model.teacher.eval()
        return loaded

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher is frozen: no dropout / drop path, whatever the student does
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.patch_embed

    @torch.no_grad()
    def teacher_forward(self, pixel_values: torch.Tensor, output_attentions: bool = True):
        """Run the teacher on the intact images (resized to `teacher_image_size`, re-normalised); returns its
        hidden states (embeddings, then every layer) and attentions."""
        self.teacher.eval()
        x = pixel_values
        size = self.config.teacher_image_size_2d
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size, mode="bicubic", align_corners=False)
        mean, std = self.config.teacher_image_mean, self.config.teacher_image_std
        if mean is None and str(self.config.teacher_config.get("model_type", "")).startswith("clip"):
            mean, std = CLIP_MEAN, CLIP_STD
        if mean is not None:
            view = (1, -1, 1, 1)
            source_mean = torch.tensor(self.config.image_mean, dtype=x.dtype, device=x.device).view(view)
            source_std = torch.tensor(self.config.image_std, dtype=x.dtype, device=x.device).view(view)
            x = (x * source_std + source_mean - torch.tensor(mean, dtype=x.dtype, device=x.device).view(view)) / (
                torch.tensor(std, dtype=x.dtype, device=x.device).view(view))
        kwargs = {}
        native = getattr(self.teacher.config, "image_size", None)
        native = (native, native) if isinstance(native, int) else tuple(native or ())
        if self._teacher_interpolates and tuple(x.shape[-2:]) != native:
            kwargs["interpolate_pos_encoding"] = True
        outputs = self.teacher(pixel_values=x, output_hidden_states=True, output_attentions=output_attentions,
                               return_dict=True, **kwargs)
        return outputs.hidden_states, outputs.attentions

    def dynamic_alignment(self, student_hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mix the student's block outputs with `distill_weights` and map each onto a teacher layer."""
        if self.distill_weights is not None:
            mixed = torch.einsum("ab,bcde->acde", self.distill_weights, torch.stack(student_hidden))
            student_hidden = list(mixed.unbind(0))
        return [self.distill_heads[i](x) for i, x in enumerate(student_hidden)]

    def teacher_targets(self, teacher_hidden, ids_keep: torch.Tensor, num_patches: int) -> list[torch.Tensor]:
        """Normalised teacher [CLS] + visible patch tokens of every teacher layer (embeddings excluded)."""
        targets = []
        for y in teacher_hidden[1:]:
            y = normalize_target(y, self.config.target_norm)
            patches = y[:, y.shape[1] - num_patches:]
            patches = torch.gather(patches, 1, ids_keep.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
            targets.append(torch.cat([y[:, :1], patches], dim=1))
        return targets

    def forward_loss(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        """Weighted distance between the aligned student features and the teacher targets (official)."""
        loss = student[0].new_zeros(())
        for weight, x, y in zip(layer_weights(self.config.loss_weights, len(student)), student, teacher):
            if weight <= 0:
                continue
            if self.config.loss_type == "l2":
                loss = loss + weight * (y - x).pow(2).mean()
            elif self.config.loss_type == "smoothl1":
                loss = loss + weight * 2 * F.smooth_l1_loss(y, x)
            else:
                loss = loss + weight * F.l1_loss(y, x)
        return loss

    def _check_input(self, pixel_values, mask, noise) -> None:
        check_pixel_values(pixel_values, self.config.num_channels)
        size = tuple(pixel_values.shape[-2:])
        if size != tuple(self.config.image_size_2d):
            raise ValueError(f"Input image size {size[0]}x{size[1]} doesn't match the model's image_size "
                             f"{self.config.image_size_2d[0]}x{self.config.image_size_2d[1]} (the student and teacher "
                             f"patch grids are built for it); resize the images with the image processor")
        batch, num_patches = pixel_values.shape[0], self.config.num_patches
        if mask is not None:
            if noise is not None:
                raise ValueError("pass either an explicit mask or noise, not both")
            masking_from_mask(mask, batch, num_patches)  # validates shape, dtype and equal counts
        if noise is not None and (not isinstance(noise, torch.Tensor) or tuple(noise.shape) != (batch, num_patches)):
            raise ValueError(f"noise must be a tensor of shape ({batch}, {num_patches}) (one value per patch), got "
                             f"{tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__}")

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, mask_ratio: float | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> MaskAlignForPreTrainingOutput:
        r"""
        mask: `(batch, num_patches)` bool, True = hidden from the student (same count per image); overrides the
            attention-guided / random masking.
        noise: `(batch, num_patches)` uniform noise in (0, 1) driving the masking (Gumbel keys for "attention",
            MAE's argsort for "random"); drawn with `torch.rand` if None.
        mask_ratio: overrides `config.mask_ratio`.
        """
        self._check_input(pixel_values, mask, noise)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if mask is None:
            check_mask_ratio(ratio)
        need_attention = mask is None and self.config.mask_type == "attention"
        teacher_hidden, teacher_attentions = self.teacher_forward(pixel_values, output_attentions=need_attention)
        num_patches = self.config.num_patches
        prefix = teacher_hidden[-1].shape[1] - num_patches
        if prefix < 1:
            raise ValueError(f"the teacher returned {teacher_hidden[-1].shape[1]} tokens for {num_patches} student "
                             f"patches; its patch grid must match the student's and include a [CLS] token")
        importance = None
        if mask is None:
            if need_attention:
                importance = teacher_attentions[-1][:, :, 0, prefix:].mean(1)
                mask = attention_guided_mask(importance, ratio, noise)
            else:
                if noise is None:
                    noise = torch.rand(pixel_values.shape[0], num_patches, device=pixel_values.device)
                mask = random_masking(noise, ratio).mask.bool()
        outputs = self.vit(pixel_values, mask=mask, output_hidden_states=True, output_attentions=output_attentions,
                           return_dict=True)
        ids_keep = outputs.ids_keep
        if ids_keep is None:  # nothing masked
            ids_keep = torch.arange(num_patches, device=pixel_values.device).expand(pixel_values.shape[0], -1)
        student = self.dynamic_alignment(list(outputs.hidden_states[1:]))
        teacher = self.teacher_targets(teacher_hidden, ids_keep, num_patches)
        loss = self.forward_loss(student, teacher)
        return MaskAlignForPreTrainingOutput(
            loss=loss, mask=mask.to(pixel_values.dtype), ids_keep=ids_keep, teacher_attention=importance,
            student_features=tuple(student), teacher_features=tuple(teacher[:len(student)]),
            hidden_states=outputs.hidden_states if output_hidden_states else None, attentions=outputs.attentions)


__all__ = ["MaskAlignPreTrainedModel", "MaskAlignModel", "MaskAlignForImageClassification",
           "MaskAlignForPreTraining", "MaskAlignForPreTrainingOutput", "attention_guided_mask", "build_teacher",
           "layer_weights", "normalize_target"]
