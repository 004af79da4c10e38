"""Masked token optimization (MTO) on SimMIM-style masked image modeling.

Paper: "Emerging Property of Masked Token for Effective Pre-training" (Choi, Lee, Joung, Park, Kim and Min, ECCV
2024), https://arxiv.org/abs/2404.08330. The code the ECCV abstract names (github.com/doihye/MTO) was not available
to us: this is implemented from the paper's public descriptions; what is stated and what is the zoo's choice is
listed in `layers/masked_token_optimization.py` (recalibration = stated exclusion of masked tokens from the visible
tokens' attention; singularity loss and its depth schedule = zoo choices; L_spa, L_e, L_r = not implemented).

`MtoForPreTraining` (the baseline MTO is switched on here is SimMIM, Xie et al., CVPR 2022, one of the paper's four
baselines):
- random patch masking (from `noise`, MAE's argsort rule) or an explicit `bool_masked_pos`; masked patch embeddings
  are replaced by the shared learnable mask token and EVERY token is encoded;
- with `use_mto`, every block gets `recalibration_bias` as its attention mask (visible queries do not aggregate
  masked keys when `mto_recalibration_weight=0`), and `mto_singularity_weight * singularity_loss` is added;
- a linear prediction head maps each patch token (after the final norm) to its `p*p*C` pixels (SimMIM's 1x1 conv +
  pixel shuffle is the same map); loss: L1 on the masked patches (SimMIM), normalised pixels if `norm_pix_loss`.

Zoo choices beyond the MTO ones: patch-level masking with MAE's noise rule (SimMIM masks 32x32 blocks, i.e. groups
of patches; give `bool_masked_pos` for that); the L1 is averaged per masked patch (SimMIM averages per masked
pixel and channel: identical when every patch has the same size).

After pre-training, `AutoModel.from_pretrained(dir)` gives `MtoModel` (a `VitModel`; MTO is a pre-training device and
is not applied there) and `AutoModelForImageClassification` a classifier; the prediction head and the mask token
(unused outside pre-training) are left out.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers.masked_token_optimization import MaskedTokenOptimizationMixin, run_blocks
from ...layers.masking import check_mask_ratio, random_masking
from ...modeling_utils import check_pixel_values
from ..mae.modeling_mae import MaeForPreTraining
from ..vit.modeling_vit import VitForImageClassification, VitModel, VitPreTrainedModel
from .configuration_mto import MtoConfig


@dataclass
class MtoForPreTrainingOutput(ModelOutput):
    r"""
    loss: reconstruction loss plus the MTO loss (if on).
    logits: `(batch, num_patches, patch_size**2 * num_channels)` predicted pixels of every patch.
    mask: `(batch, num_patches)`, 1 for masked patches (mask token), 0 for visible ones.
    reconstruction_loss: the L1 on the masked patches alone.
    mto_loss: the weighted data-singularity loss (None when off).
    hidden_states / attentions: the encoder's (every token; attentions after recalibration).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    mto_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MtoPreTrainedModel(VitPreTrainedModel):
    config: MtoConfig
    config_class = MtoConfig
    _keys_to_ignore_on_load_unexpected = [r"^prediction_head\.", r"mask_token$"]


class MtoModel(MtoPreTrainedModel, VitModel):
    """The encoder pre-trained with MTO: a `VitModel` (plain attention). The mask token is kept only inside
    `MtoForPreTraining` (`keep_mask_token=True`); elsewhere it would be a weight no forward uses."""

    def __init__(self, config: MtoConfig, add_pooling_layer: bool = True, keep_mask_token: bool = False):
        super().__init__(config, add_pooling_layer)
        if not keep_mask_token:
            self.embeddings.mask_token = None


class MtoForImageClassification(MtoPreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning an MTO-pre-trained encoder (without the mask token)."""

    def __init__(self, config: MtoConfig):
        super().__init__(config)
        self.vit.embeddings.mask_token = None


class MtoForPreTraining(MaskedTokenOptimizationMixin, MtoPreTrainedModel):
    """SimMIM with masked token optimization (see module doc); `use_mto=False` is plain SimMIM."""

    patchify = MaeForPreTraining.patchify  # (B, C, H, W) -> (B, N, p*p*C), the official MAE layout

    def __init__(self, config: MtoConfig):
        super().__init__(config)
        if config.fc_norm:
            raise ValueError("MTO pre-training predicts from the final-normed tokens: use pooling='cls' and "
                             "use_fc_norm=False (switch to pooling='mean' when fine-tuning)")
        self.vit = MtoModel(config, add_pooling_layer=False, keep_mask_token=True)
        self.prediction_head = nn.Linear(config.hidden_size, config.patch_size**2 * config.num_channels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.patch_embed

    def forward_loss(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute error per patch, averaged over the masked patches (all patches if none is masked)."""
        target = self.patchify(pixel_values)
        if self.config.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1.0e-6) ** 0.5
        loss = (logits - target).abs().mean(-1)
        mask = mask.to(loss.dtype)
        if mask.sum() == 0:
            return loss.mean()
        return (loss * mask).sum() / mask.sum()

    def _draw_mask(self, pixel_values, bool_masked_pos, noise, mask_ratio) -> torch.Tensor:
        patch = self.config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % patch or width % patch:
            raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {patch}; the pixel "
                             f"target needs whole patches (resize or crop the images)")
        if bool_masked_pos is not None:
            if noise is not None or mask_ratio is not None:
                raise ValueError("pass either bool_masked_pos or noise/mask_ratio, not both")
            return bool_masked_pos
        ratio = check_mask_ratio(self.config.mask_ratio if mask_ratio is None else mask_ratio)
        shape = (pixel_values.shape[0], (height // patch) * (width // patch))
        if noise is None:
            noise = torch.rand(shape, device=pixel_values.device)
        return random_masking(noise.to(pixel_values.device), ratio, *shape).mask.bool()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, bool_masked_pos: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, mask_ratio: float | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> MtoForPreTrainingOutput:
        r"""
        bool_masked_pos: `(batch, num_patches)` bool, True = replaced by the mask token (overrides noise/ratio).
        noise: `(batch, num_patches)` float; the `int(N * (1 - mask_ratio))` smallest stay visible (MAE's rule).
        mask_ratio: overrides `config.mask_ratio`.
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        mask = self._draw_mask(pixel_values, bool_masked_pos, noise, mask_ratio)
        self.vit._check_bool_masked_pos(mask, pixel_values)
        prefix, tokens, _ = self.vit.embeddings(pixel_values, mask, interpolate_pos_encoding)
        num_prefix = prefix.shape[1]
        hidden = self.vit.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        attention_mask = self.mto_attention_mask(mask, num_prefix, hidden.dtype)
        need_hidden = output_hidden_states or (self.config.use_mto and self.config.mto_singularity_weight > 0)
        hidden, all_hidden, attentions = run_blocks(self.vit.blocks, hidden, attention_mask, need_hidden,
                                                    output_attentions)
        logits = self.prediction_head(self.vit.layernorm(hidden)[:, num_prefix:])
        reconstruction = self.forward_loss(pixel_values, logits, mask)
        mto = self.mto_loss(all_hidden, mask, num_prefix)
        loss = reconstruction if mto is None else reconstruction + mto
        return MtoForPreTrainingOutput(
            loss=loss, logits=logits, mask=mask.to(pixel_values.dtype), reconstruction_loss=reconstruction,
            mto_loss=mto, hidden_states=all_hidden if output_hidden_states else None, attentions=attentions)


__all__ = ["MtoPreTrainedModel", "MtoModel", "MtoForImageClassification", "MtoForPreTraining",
           "MtoForPreTrainingOutput"]
