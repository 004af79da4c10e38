"""Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022).

Paper: https://arxiv.org/abs/2111.06377 - official code: https://github.com/facebookresearch/mae (CC-BY-NC 4.0).

`MaeForPreTraining` = the zoo ViT encoder run on the visible patches only (random masking from `noise`, §3
"MAE encoder"), a lightweight decoder that sees the encoded tokens plus a shared learnable mask token at every
masked position with fixed 2-D sin-cos positions ("MAE decoder"), and the mean squared error between the predicted
and the (optionally per-patch normalised) pixels, on masked patches only ("Reconstruction target").
Proven equal to transformers' `ViTMAEForPreTraining` (loss, mask, ids_restore, logits) by
`tests/models/mae/test_parity_mae.py`.

The encoder is a `VitModel`: after pre-training, `AutoModel.from_pretrained(dir)` gives `MaeModel` (a `VitModel`)
and `AutoModelForImageClassification.from_pretrained(dir, num_labels=...)` / `VitForImageClassification` give a
classifier with the pre-trained encoder; the decoder weights are left out.

Differences from the official code / transformers:
- with nothing masked (mask_ratio 0) the loss is taken over all patches instead of dividing by zero;
- at an input size other than `image_size` (`interpolate_pos_encoding=True`) the decoder's sin-cos table is
  recomputed for the new grid (transformers resamples it along the flattened sequence);
- the encoder and decoder may use register tokens or no [CLS] token (the decoder passes every prefix token through).

Masked token optimization (MTO; Choi et al., ECCV 2024, https://arxiv.org/abs/2404.08330), off by default
(`config.use_mto`): MAE's mask tokens live in the decoder, so the decoder blocks get MTO's additive attention mask
(visible and prefix tokens' attention to mask tokens times `mto_recalibration_weight`, 0 = excluded) and
`mto_singularity_weight * singularity_loss` over the decoder's input and block outputs is added to the loss
(`mto_loss` output). What is the paper's and what the zoo's choice: `layers/masked_token_optimization.py`.
With `use_mto=False` (or weight 1 and no singularity loss) the model is plain MAE, bit for bit.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import TransformerBlock
from ...layers.masked_token_optimization import MaskedTokenOptimizationMixin, run_blocks
from ...layers.masking import restore_tokens
from ...layers.position_embedding import sincos_2d_position_embedding
from ...modeling_utils import check_pixel_values
from ..vit.modeling_vit import (
    VitEmbeddings,
    VitForImageClassification,
    VitModel,
    VitPreTrainedModel,
    check_attention_mask,
)
from .configuration_mae import MaeConfig


@dataclass
class MaeForPreTrainingOutput(ModelOutput):
    r"""
    loss: mean squared error on the masked patches (normalised pixels if `norm_pix_loss`).
    logits: `(batch, num_patches, patch_size**2 * num_channels)` predicted pixels of every patch (patch order).
    mask: `(batch, num_patches)`, 1 for masked (removed) patches, 0 for visible ones.
    ids_restore: `(batch, num_patches)`, the permutation that restores patch order.
    hidden_states / attentions: the encoder's (visible tokens only).
    mto_loss: the weighted MTO singularity loss, already included in `loss` (None unless `use_mto` with
        `mto_singularity_weight > 0`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    mto_loss: torch.FloatTensor | None = None


class MaeDecoding(NamedTuple):
    """What `MaeForPreTraining.reconstruct` returns."""

    decoder_input: torch.Tensor  # (B, P + N, D): embedded tokens + mask tokens + positions
    attention_mask: torch.Tensor | None  # the MTO mask given to the decoder blocks (None without MTO)
    logits: torch.Tensor  # (B, N, p*p*C)
    mto_loss: torch.Tensor | None


class MaeDecoder(nn.Module):
    """Embed the encoded tokens, put the mask token at every removed patch, add sin-cos positions, run the
    decoder blocks and predict each patch's pixels."""

    def __init__(self, config: MaeConfig):
        super().__init__()
        self.config = config
        dim = config.decoder_hidden_size
        self.grid_size = config.grid_size
        self.num_prefix_tokens = config.num_prefix_tokens
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("position_embeddings", self.fixed_position_embeddings())
        self.blocks = nn.ModuleList(
            TransformerBlock(config, dim, config.decoder_num_attention_heads, mlp_ratio=config.decoder_mlp_ratio,
                             qkv_bias=config.qkv_bias, layer_norm_eps=config.layer_norm_eps,
                             hidden_act=config.hidden_act)
            for _ in range(config.decoder_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pred = nn.Linear(dim, config.patch_size**2 * config.num_channels)

    def fixed_position_embeddings(self, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return sincos_2d_position_embedding(grid or self.grid_size, self.config.decoder_hidden_size,
                                            self.num_prefix_tokens)

    def embed_tokens(self, latent: torch.Tensor, ids_restore: torch.Tensor | None,
                     grid: tuple[int, int] | None = None) -> torch.Tensor:
        """The decoder blocks' input `(B, P + N, D)`: embedded tokens, the mask token at every removed patch
        (`ids_restore` None = nothing was removed) and the sin-cos positions."""
        x = self.embed(latent)  # restore on the decoder width (cheaper than on the encoder's)
        if ids_restore is not None:
            x = restore_tokens(x, ids_restore, self.mask_token, num_prefix_tokens=self.num_prefix_tokens)
        if grid is None or tuple(grid) == tuple(self.grid_size):
            positions = self.position_embeddings
        else:  # the table is a fixed function of the grid: recompute it exactly
            positions = self.fixed_position_embeddings(grid).to(x)
        return x + positions

    def decode(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
               output_hidden_states: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Blocks, norm and head on the decoder input `(B, P + N, D)`; returns the `(B, N, p*p*C)` predictions and
        (if asked) the input and every block's output. `attention_mask`: additive, broadcastable to
        `(B, heads, P + N, P + N)`."""
        if attention_mask is not None:
            attention_mask = check_attention_mask(attention_mask, x.shape[0], self.config.decoder_num_attention_heads,
                                                  x.shape[1], x)
        x, hidden_states, _ = run_blocks(self.blocks, x, attention_mask, output_hidden_states)
        return self.pred(self.norm(x))[:, self.num_prefix_tokens:], hidden_states

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int] | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`latent`: `(B, P + V, C)` encoder output (prefix tokens first); `ids_restore`: `(B, N)`;
        `attention_mask`: optional additive mask for every decoder block (see `decode`).
        Returns `(B, N, patch_size**2 * num_channels)` in patch order."""
        return self.decode(self.embed_tokens(latent, ids_restore, grid), attention_mask)[0]


class MaePreTrainedModel(VitPreTrainedModel):
    config: MaeConfig
    config_class = MaeConfig
    _no_split_modules = ["VitEmbeddings", "TransformerBlock", "MaeDecoder"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official MAE initialisation: xavier-uniform linear layers and patch projection (as a linear map),
        zero biases, unit LayerNorms, N(0, 0.02) [CLS] and mask tokens, fixed sin-cos tables."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, MaeDecoder):
            init.copy_(module.position_embeddings, module.fixed_position_embeddings())
            init.normal_(module.mask_token, std=self.config.initializer_range)
        elif isinstance(module, VitEmbeddings):
            super()._init_weights(module)
            for token in (module.cls_token, module.register_tokens):
                if token is not None:
                    init.normal_(token, std=self.config.initializer_range)
        else:
            super()._init_weights(module)


class MaeModel(MaePreTrainedModel, VitModel):
    """The MAE encoder: a `VitModel` (no masking unless `noise`/`mask_ratio`/`mask` is given)."""


class MaeForImageClassification(MaePreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning or linear probing an MAE encoder (the official recipe pools
    with `pooling="mean"`, i.e. fc_norm on the mean patch token)."""


class MaeForPreTraining(MaskedTokenOptimizationMixin, MaePreTrainedModel):
    """MAE pre-training: visible-only ViT encoder + decoder + masked pixel regression, optionally with MTO in the
    decoder (see module doc)."""

    def __init__(self, config: MaeConfig):
        super().__init__(config)
        if config.fc_norm:
            raise ValueError(
                "MAE pre-training normalises the encoder output with the final norm: use pooling='cls' and "
                "use_fc_norm=False (switch to pooling='mean' when fine-tuning)"
            )
        self.vit = MaeModel(config, add_pooling_layer=False)
        self.decoder = MaeDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.patch_embed

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, N, p*p*C)`, each patch row-major with channels last (the official layout)."""
        batch, channels, height, width = pixel_values.shape
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ValueError(
                f"Image size {height}x{width} is not a multiple of the patch size {patch}; the pixel target needs "
                f"whole patches (resize or crop the images)"
            )
        x = pixel_values.reshape(batch, channels, height // patch, patch, width // patch, patch)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(batch, (height // patch) * (width // patch), patch * patch * channels)

    def unpatchify(self, patches: torch.Tensor, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Inverse of `patchify`: `(B, N, p*p*C)` -> `(B, C, H, W)` (`image_size` defaults to the config's)."""
        patch, channels = self.config.patch_size, self.config.num_channels
        height, width = image_size or self.config.image_size_2d
        rows, cols = height // patch, width // patch
        if patches.ndim != 3 or patches.shape[1] != rows * cols or patches.shape[2] != patch * patch * channels:
            raise ValueError(f"patches must have shape (batch, {rows * cols}, {patch * patch * channels}) for a "
                             f"{height}x{width} image, got {tuple(patches.shape)}")
        x = patches.reshape(patches.shape[0], rows, cols, patch, patch, channels)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], channels, height, width)

    def patch_losses(self, pixel_values: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """`(B, N)` mean squared error of every patch (normalised-pixel target if `norm_pix_loss`)."""
        target = self.patchify(pixel_values)
        if self.config.norm_pix_loss:  # unbiased variance, as `Tensor.var`, but two-pass (much faster on CPU)
            target = target - target.mean(dim=-1, keepdim=True)
            var = target.pow(2).sum(dim=-1, keepdim=True) / (target.shape[-1] - 1)
            target = target / (var + 1.0e-6) ** 0.5
        return (logits - target).pow(2).mean(dim=-1)

    def forward_loss(self, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches (all patches if none is masked)."""
        loss = self.patch_losses(pixel_values, logits)
        masked = mask.sum()
        if masked == 0:
            return loss.mean()
        return (loss * mask).sum() / masked

    def reconstruct(self, latent: torch.Tensor, ids_restore: torch.Tensor | None, mask: torch.Tensor | None,
                    grid: tuple[int, int] | None = None) -> MaeDecoding:
        """Decode the encoder output `latent` (`(B, P + V, C)`) with MTO when `config.use_mto`: `mask` `(B, N)`
        (1/True = masked, patch order) sets which decoder tokens are mask tokens."""
        decoder_input = self.decoder.embed_tokens(latent, ids_restore, grid)
        if mask is None:
            attention_mask, need_hidden = None, False
        else:
            mask = mask.bool()
            attention_mask = self.mto_attention_mask(mask, self.decoder.num_prefix_tokens, decoder_input.dtype)
            need_hidden = self.config.use_mto and self.config.mto_singularity_weight > 0
        logits, hidden_states = self.decoder.decode(decoder_input, attention_mask, need_hidden)
        mto = self.mto_loss(hidden_states, mask, self.decoder.num_prefix_tokens) if need_hidden else None
        return MaeDecoding(decoder_input, attention_mask, logits, mto)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, mask_ratio: float | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> MaeForPreTrainingOutput:
        r"""
        noise: `(batch, num_patches)` float; the patches with the smallest noise stay visible (random if None).
        mask: `(batch, num_patches)` bool, True = masked; replaces the random masking (same count per image).
        mask_ratio: overrides `config.mask_ratio` (ignored with an explicit `mask`).
        """
        check_pixel_values(pixel_values, self.config.num_channels)
        patch = self.config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % patch or width % patch:
            raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {patch}; MAE "
                             f"reconstructs whole patches (resize or crop the images)")
        if mask is not None and (noise is not None or mask_ratio is not None):
            raise ValueError("pass either an explicit mask or noise/mask_ratio, not both")
        ratio = None if mask is not None else (self.config.mask_ratio if mask_ratio is None else mask_ratio)
        outputs = self.vit(pixel_values, noise=noise, mask_ratio=ratio, mask=mask,
                           interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           return_dict=True)
        grid = (height // patch, width // patch)
        decoding = self.reconstruct(outputs.last_hidden_state, outputs.ids_restore, outputs.mask, grid)
        loss = self.forward_loss(pixel_values, decoding.logits, outputs.mask)
        if decoding.mto_loss is not None:
            loss = loss + decoding.mto_loss
        return MaeForPreTrainingOutput(loss=loss, logits=decoding.logits, mask=outputs.mask,
                                       ids_restore=outputs.ids_restore, hidden_states=outputs.hidden_states,
                                       attentions=outputs.attentions, mto_loss=decoding.mto_loss)


__all__ = ["MaePreTrainedModel", "MaeModel", "MaeForImageClassification", "MaeForPreTraining", "MaeDecoder",
           "MaeForPreTrainingOutput", "MaeDecoding"]
