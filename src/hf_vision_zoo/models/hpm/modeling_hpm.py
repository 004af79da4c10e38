"""HPM, Hard Patches Mining for masked image modelling (Wang et al., CVPR 2023, https://arxiv.org/abs/2304.05919;
journal version "Bootstrap Masked Visual Modeling via Hard Patches Mining"). Official code:
https://github.com/Haochen-Wang409/HPM (Apache-2.0), `models_mae_learn_loss.py` + `engine_pretrain.py`.

`HpmForPreTraining` is an MAE (`MaeForPreTraining`: visible-only encoder, reconstruction decoder, masked pixel
MSE) with three additions:

- a **loss predictor**: a second decoder of the same kind (its own blocks, norm and linear head, fed the same
  embedded tokens + mask tokens + positions as the reconstruction decoder) that outputs one score per patch (the
  mean of its `p*p*C` outputs, as in the official head);
- its **objective** (`relative_loss=True`, official `--relative`): for every pair (i, j) of masked patches of an
  image, a binary cross-entropy that `score_j - score_i` ranks `loss_j` above/below `loss_i` (pairs with equal
  losses are ignored), summed over the batch and divided by the number of valid pairs; the reconstruction losses
  are detached. `relative_loss=False`: MSE to the per-image standardised losses. Total loss = reconstruction +
  loss prediction (weight 1, as in the official code);
- **hard-patch masking with an easy-to-hard schedule**: a teacher (an EMA of the model, official `ModelEma`)
  scores every patch of the full image; the `int(num_masked * alpha)` patches with the highest predicted loss are
  masked, and the rest of the mask is random, with `alpha = hard_patch_ratio * progress` (`easy_to_hard`).

Training progress. The official code uses the epoch: `alpha = 0.5 * (epoch + 1) / total_epochs`, fixed during an
epoch. Here `set_progress(progress)` (fraction of training done, in [0, 1]) sets `alpha = hard_patch_ratio *
progress`; `set_progress((epoch + 1) / total_epochs)` (see `progress_from_epoch`) gives exactly the official
fraction, and the pre-training loop's per-step `set_progress(step / total_steps)` is its continuous version. The
state is the plain attribute `model.progress` (not saved: the loop sets it before every step).

The EMA teacher (`model.teacher`: `vit`, `decoder`, `loss_predictor`, frozen, saved with the model) is advanced by
`set_progress` itself, in training mode only: every call with a larger progress than the previous one (once per
optimizer step when the loop passes the step's progress, also under gradient accumulation) does
`teacher = decay * teacher + (1 - decay) * model`, the official `model_ema.update(model)` after each optimizer
step; the decay rises from `ema_decay` to `ema_decay_end` over the first `ema_decay_warmup` of training (official:
`0.999 + epoch / 100 * 0.0009` for the first 100 epochs, then 0.9999; equal at every epoch start with
`ema_decay_warmup = 100 / total_epochs`). The teacher starts as a copy of the model.

Differences from the official code (none changes the model or its losses):
- the random part of the mask is ranked by a `noise` tensor (`torch.rand`, or given explicitly) instead of
  `np.random.shuffle` per image (official) / `torch.randn` when no patch is mined: the same uniform distribution
  over masks, but reproducible and vectorised;
- the decoders see the tokens in patch order (MAE style) instead of visible-then-masked; attention with positions
  is order-independent, so outputs agree up to float rounding (parity tests at 1e-5);
- with `relative_loss` the loss predictor's output bias is frozen (`requires_grad=False`): the ranking loss and
  the mask depend on score differences only, so its gradient is zero (the official code leaves it trainable);
- the loss-prediction loss is 0 when fewer than 2 patches are masked or no pair has different losses (the
  official code divides by zero); the official `vis_mask_ratio` (0 in every HPM recipe) and feature targets
  (`models_mae_learn_feature_loss.py`) are not implemented.
Proven equal to the official code (teacher scores, mask, reconstruction, loss terms) by
`tests/models/hpm/test_official_hpm.py`.

Masked token optimization (`use_mto`, inherited from MAE, off by default; Choi et al., ECCV 2024,
https://arxiv.org/abs/2404.08330): the MTO attention mask goes to the reconstruction decoder AND to the loss
predictor (both see the mask tokens; a zoo choice), the singularity loss is taken on the reconstruction decoder's
tokens and added to the loss (`mto_loss`). The teacher's scoring pass sees no mask token and is unchanged.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import TransformerBlock
from ...layers.masked_token_optimization import run_blocks
from ...layers.masking import check_mask_ratio, num_visible_tokens
from ...modeling_utils import check_pixel_values
from ..mae.modeling_mae import MaeDecoder, MaeForPreTraining, MaeModel, MaePreTrainedModel
from ..vit.modeling_vit import VitForImageClassification, VitModel
from .configuration_hpm import HpmConfig


@dataclass
class HpmForPreTrainingOutput(ModelOutput):
    r"""
    loss: `reconstruction_loss + loss_prediction_loss`.
    reconstruction_loss: MSE on the masked patches (the MAE loss).
    loss_prediction_loss: the loss predictor's objective (ranking BCE if `relative_loss`, else MSE).
    logits: `(batch, num_patches, patch_size**2 * num_channels)` reconstructed patches, patch order.
    predicted_losses: `(batch, num_patches)` the loss predictor's score of every patch, patch order.
    mask: `(batch, num_patches)` float, 1 = masked.
    hard_mask: `(batch, num_patches)` bool, the masked patches chosen for their high predicted loss (None when
        the mask was given).
    ids_restore, hidden_states, attentions: as in `MaeForPreTrainingOutput` (the encoder's).
    mto_loss: the weighted MTO singularity loss, included in `loss` (None unless on).
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    loss_prediction_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    predicted_losses: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    hard_mask: torch.BoolTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    mto_loss: torch.FloatTensor | None = None


class HpmLossPredictor(nn.Module):
    """Decoder blocks, norm and a `p*p*C` linear head over the decoder input; the score of a patch is the mean of
    its head outputs (official `decoder_blocks_losspred` / `decoder_norm_losspred` / `decoder_pred_losspred`)."""

    def __init__(self, config: HpmConfig):
        super().__init__()
        dim = config.decoder_hidden_size
        self.num_prefix_tokens = config.num_prefix_tokens
        self.blocks = nn.ModuleList(
            TransformerBlock(config, dim, config.decoder_num_attention_heads, mlp_ratio=config.decoder_mlp_ratio,
                             qkv_bias=config.qkv_bias, layer_norm_eps=config.layer_norm_eps,
                             hidden_act=config.hidden_act)
            for _ in range(config.loss_predictor_depth)
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pred = nn.Linear(dim, config.patch_size**2 * config.num_channels)

    def forward(self, decoder_input: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, P + N, D)` (`MaeDecoder.embed_tokens`) -> `(B, N)` predicted losses; `attention_mask`: an
        additive mask for every block (MTO's, already checked by `MaeDecoder.decode`)."""
        x, _, _ = run_blocks(self.blocks, decoder_input, attention_mask)
        return self.pred(self.norm(x))[:, self.num_prefix_tokens:].mean(dim=-1)


class HpmTeacher(nn.Module):
    """The frozen EMA copy that scores patches for the mask: same `vit`, `decoder` and `loss_predictor` as the
    model (the whole model, like the official `ModelEma`; only the loss-prediction path runs)."""

    def __init__(self, config: HpmConfig):
        super().__init__()
        self.vit = MaeModel(config, add_pooling_layer=False)
        self.decoder = MaeDecoder(config)
        self.loss_predictor = HpmLossPredictor(config)


class HpmPreTrainedModel(MaePreTrainedModel):
    config: HpmConfig
    config_class = HpmConfig
    _no_split_modules = ["VitEmbeddings", "TransformerBlock", "MaeDecoder", "HpmLossPredictor"]


class HpmModel(HpmPreTrainedModel, VitModel):
    """The HPM encoder: a `VitModel` (what `AutoModel.from_pretrained(pretraining_dir)` gives)."""


class HpmForImageClassification(HpmPreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning an HPM encoder (the official fine-tuning is MAE's: use
    `pooling="mean"`, `position_embedding_type="learned"`)."""


def relative_loss_prediction_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pairwise ranking BCE: for every image and ordered pair (i, j) with `target_j != target_i`, the label is
    `target_j > target_i` and the logit `predicted_j - predicted_i`; `log(sigmoid + eps)` as in the official code.
    Summed over the batch, divided by the number of valid pairs."""
    positive = target.unsqueeze(1) > target.unsqueeze(2)
    negative = target.unsqueeze(1) < target.unsqueeze(2)
    probability = torch.sigmoid(predicted.unsqueeze(1) - predicted.unsqueeze(2))
    loss = -(positive * torch.log(probability + eps) + negative * torch.log(1 - probability + eps))
    valid = (positive | negative).sum()
    return loss.sum() / valid.clamp(min=1)


def absolute_loss_prediction_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE to the losses standardised per image (unbiased variance, eps 1e-6, as in the official code)."""
    target = (target - target.mean(dim=1, keepdim=True)) / (target.var(dim=1, keepdim=True) + 1.0e-6) ** 0.5
    return (predicted - target).pow(2).mean()


class HpmForPreTraining(HpmPreTrainedModel, MaeForPreTraining):
    """HPM pre-training: MAE + loss predictor + hard-patch masking from an EMA teacher (see module doc)."""

    def __init__(self, config: HpmConfig):
        super().__init__(config)
        self.loss_predictor = HpmLossPredictor(config)
        self.teacher = HpmTeacher(config) if config.use_ema_teacher else None
        self.progress = 0.0  # fraction of training done, set by set_progress
        self._teacher_progress = None  # progress of the last set_progress that may advance the teacher
        self.post_init()
        if config.relative_loss:  # scores only matter up to a shift (ranking loss, argsort): the head's bias gets
            self.loss_predictor.pred.bias.requires_grad_(False)  # no gradient, so it is frozen (kept in weights)
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
            self.teacher.eval()
            self.copy_to_teacher()

    # ---- schedule -------------------------------------------------------------------------------------------
    @staticmethod
    def progress_from_epoch(epoch: int, total_epochs: int) -> float:
        """The progress that reproduces the official schedule during (0-based) `epoch`: `(epoch + 1) / total`."""
        if total_epochs < 1 or not 0 <= epoch < total_epochs:
            raise ValueError(f"need 0 <= epoch < total_epochs, got epoch={epoch}, total_epochs={total_epochs}")
        return (epoch + 1) / total_epochs

    def hard_fraction(self, progress: float | None = None) -> float:
        """Fraction of the masked patches mined as hard at `progress` (default: the current one)."""
        progress = self.progress if progress is None else progress
        return self.config.hard_patch_ratio * progress if self.config.easy_to_hard else self.config.hard_patch_ratio

    def ema_decay_at(self, progress: float) -> float:
        config = self.config
        ramp = 1.0 if config.ema_decay_warmup == 0 else min(progress / config.ema_decay_warmup, 1.0)
        return config.ema_decay + ramp * (config.ema_decay_end - config.ema_decay)

    def set_progress(self, progress: float) -> None:
        """Set the fraction of training done (in [0, 1]); call it before every step. In training mode, a larger
        progress than last time first moves the EMA teacher toward the current weights (the official update
        after each optimizer step), with the decay of the previous step's progress."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress is the fraction of training done, a number in [0, 1]; got {progress!r}")
        progress = float(progress)
        if self.teacher is not None and self.training:
            if self._teacher_progress is not None and progress > self._teacher_progress:
                self.update_teacher(self.ema_decay_at(self._teacher_progress))
            if self._teacher_progress is None or progress > self._teacher_progress:
                self._teacher_progress = progress
        self.progress = progress

    def _student_and_teacher(self):
        students = (self.vit, self.decoder, self.loss_predictor)
        teachers = (self.teacher.vit, self.teacher.decoder, self.teacher.loss_predictor)
        for student, teacher in zip(students, teachers):
            yield from zip(student.state_dict().values(), teacher.state_dict().values())

    @torch.no_grad()
    def update_teacher(self, decay: float) -> None:
        """`teacher = decay * teacher + (1 - decay) * model` over every weight and buffer."""
        if self.teacher is None:
            raise ValueError("this model has no EMA teacher (use_ema_teacher=False)")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        for student, teacher in self._student_and_teacher():
            teacher.copy_(teacher * decay + (1.0 - decay) * student)

    def copy_to_teacher(self) -> None:
        """Make the teacher an exact copy of the model (its state at the start of training)."""
        self.update_teacher(0.0)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    # ---- masking --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score_patches(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """`(B, N)` predicted loss of every patch of the full (unmasked) image, by the teacher (or by the model
        itself without an EMA teacher)."""
        source = self.teacher if self.teacher is not None else self
        latent = source.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                            return_dict=True).last_hidden_state
        grid = self._grid(pixel_values)
        return source.loss_predictor(source.decoder.embed_tokens(latent, None, grid))

    def generate_mask(self, predicted_losses: torch.Tensor, mask_ratio: float | None = None,
                      noise: torch.Tensor | None = None, progress: float | None = None):
        """Mask `int(N * mask_ratio)` patches: the `int(num_masked * hard_fraction(progress))` patches with the
        highest predicted loss, then the others by ascending `noise` after the `int(N * (1 - mask_ratio))` kept
        ones. Returns `(mask, hard_mask)`, both `(B, N)` bool, True = masked / mined."""
        if predicted_losses.ndim != 2:
            raise ValueError(f"predicted_losses must be (batch, num_patches), got {tuple(predicted_losses.shape)}")
        batch, length = predicted_losses.shape
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        check_mask_ratio(ratio)
        if progress is not None and (isinstance(progress, bool) or not 0.0 <= progress <= 1.0):
            raise ValueError(f"progress must be in [0, 1], got {progress!r}")
        if noise is None:
            noise = torch.rand(batch, length, device=predicted_losses.device)
        elif noise.shape != predicted_losses.shape:
            raise ValueError(f"noise must have shape {tuple(predicted_losses.shape)} (batch, num_patches), got "
                             f"{tuple(noise.shape)}")
        elif not torch.isfinite(noise).all():
            raise ValueError("noise must be finite")
        len_keep = num_visible_tokens(length, ratio)
        num_hard = int((length - len_keep) * self.hard_fraction(progress))
        hard_mask = torch.zeros(batch, length, dtype=torch.bool, device=predicted_losses.device)
        if num_hard > 0:
            hard_ids = torch.argsort(predicted_losses, dim=1)[:, length - num_hard:]
            hard_mask.scatter_(1, hard_ids, True)
        order = torch.argsort(noise.masked_fill(hard_mask, float("inf")), dim=1)
        mask = torch.ones_like(hard_mask)
        mask.scatter_(1, order[:, :len_keep], False)
        return mask, hard_mask

    def _grid(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        patch = self.config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % patch or width % patch:
            raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {patch}; HPM "
                             f"reconstructs whole patches (resize or crop the images)")
        return height // patch, width // patch

    # ---- forward --------------------------------------------------------------------------------------------
    def loss_prediction_loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss predictor's objective over `(B, M)` masked-patch scores and (detached) losses."""
        if predicted.shape[1] < 2:
            return predicted.sum() * 0.0
        if self.config.relative_loss:
            return relative_loss_prediction_loss(predicted, target)
        return absolute_loss_prediction_loss(predicted, target)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, mask_ratio: float | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> HpmForPreTrainingOutput:
        r"""
        mask: `(batch, num_patches)` bool, True = masked; replaces the hard-patch masking (same count per image).
        noise: `(batch, num_patches)` float ranking the random (non-mined) part of the mask (random if None).
        mask_ratio: overrides `config.mask_ratio` (not with an explicit `mask`).
        """
        check_pixel_values(pixel_values, self.config.num_channels)
        grid = self._grid(pixel_values)
        if mask is not None and (noise is not None or mask_ratio is not None):
            raise ValueError("pass either an explicit mask or noise/mask_ratio, not both")
        hard_mask = None
        if mask is None:
            mask, hard_mask = self.generate_mask(self.score_patches(pixel_values, interpolate_pos_encoding),
                                                 mask_ratio=mask_ratio, noise=noise)
        elif mask.shape != (pixel_values.shape[0], grid[0] * grid[1]):
            raise ValueError(f"mask must have shape {(pixel_values.shape[0], grid[0] * grid[1])} (batch, "
                             f"num_patches), got {tuple(mask.shape)}")
        outputs = self.vit(pixel_values, mask=mask.bool(), interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           return_dict=True)
        decoding = self.reconstruct(outputs.last_hidden_state, outputs.ids_restore, mask, grid)
        logits = decoding.logits
        predicted = self.loss_predictor(decoding.decoder_input, decoding.attention_mask)
        float_mask = mask.to(logits.dtype)
        reconstruction_loss = self.forward_loss(pixel_values, logits, float_mask)
        masked = mask.bool()
        batch, num_masked = mask.shape[0], int(masked[0].sum())
        targets = self.patch_losses(pixel_values, logits)[masked].reshape(batch, num_masked).detach()
        prediction_loss = self.loss_prediction_loss(predicted[masked].reshape(batch, num_masked), targets)
        loss = reconstruction_loss + prediction_loss
        if decoding.mto_loss is not None:
            loss = loss + decoding.mto_loss
        return HpmForPreTrainingOutput(
            loss=loss, reconstruction_loss=reconstruction_loss, loss_prediction_loss=prediction_loss, logits=logits,
            predicted_losses=predicted, mask=float_mask, hard_mask=hard_mask, ids_restore=outputs.ids_restore,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions, mto_loss=decoding.mto_loss)


__all__ = ["HpmPreTrainedModel", "HpmModel", "HpmForImageClassification", "HpmForPreTraining", "HpmLossPredictor",
           "HpmTeacher", "HpmForPreTrainingOutput", "relative_loss_prediction_loss",
           "absolute_loss_prediction_loss"]
