"""An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale (Dosovitskiy et al., ICLR 2021).

Paper: https://arxiv.org/abs/2010.11929 - official code: https://github.com/google-research/vision_transformer
(Apache-2.0); the PyTorch reference the zoo follows is timm's `VisionTransformer` (same layout as the DeiT, MAE and
most MIM repos: fused `qkv`, pre-norm blocks, optional LayerScale / register tokens / fc_norm).

The network: a `p x p` patch embedding, optional [CLS] and register tokens, absolute position embeddings (learned,
or MAE's fixed 2-D sin-cos), `layers.TransformerBlock`s, a final LayerNorm and [CLS] or mean pooling. Proven equal to
timm and transformers by `tests/models/vit/test_parity_vit.py`.

What the zoo adds for masked image modeling (MAE, HPM, GMML, MaskAlign, MTO, Hybrid Distill):
- `noise` + `mask_ratio` (MAE random masking) or an explicit boolean `mask`: only the visible patches are embedded
  (the patch convolution runs on a strip of the kept patches, `layers.masking.gather_patches`) and encoded, so
  masked tokens cost nothing and are never attended to;
- `bool_masked_pos`: masked patch embeddings are replaced by a learnable mask token (SimMIM/GMML style) and every
  token is encoded;
- `hidden_states` (every block) and `attentions` for feature/relation distillation;
- `attention_mask`: an additive mask given to every block (e.g. MTO's recalibration, see
  `layers/masked_token_optimization.py`), checked by `check_attention_mask`.

Differences from timm / transformers, none of which changes the output at the configured `image_size`:
- another input size needs `interpolate_pos_encoding=True` (bicubic resize of the position table; sides that are not
  multiples of the patch are zero-padded on the bottom/right); without it the model raises a ValueError;
- attention runs through transformers' attention interface (SDPA by default).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import PatchEmbed, TransformerBlock
from ...layers.masked_token_optimization import run_blocks
from ...layers.masking import check_mask_ratio, gather_patches, gather_tokens, masking_from_mask, random_masking
from ...layers.position_embedding import resample_position_embeddings, sincos_2d_position_embedding
from ...layers.transformer import LayerScale
from ...layers.vit_block_settings import drop_path_rates, vit_block_kwargs
from ...modeling_utils import ZooPreTrainedModel, check_labels, check_pixel_values, init_common_weights
from .configuration_vit import VitConfig


@dataclass
class VitModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, prefix + encoded patches, hidden_size)` after the final norm; prefix tokens first.
    pooler_output: `(batch, hidden_size)`: [CLS] or the normalised mean of the patch tokens (`config.pooling`).
    hidden_states: the embedding output, then every block's output (before the final norm).
    attentions: every block's attention probabilities, `(batch, heads, tokens, tokens)`.
    mask: `(batch, num_patches)`, 1 for patches removed before encoding, 0 for encoded ones (None if none removed).
    ids_restore: `(batch, num_patches)`, the permutation that puts [encoded, removed] tokens back in patch order.
    ids_keep: `(batch, encoded patches)`, the patch index of each encoded patch token.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    ids_keep: torch.LongTensor | None = None


def check_attention_mask(attention_mask, batch: int, num_heads: int, tokens: int,
                         reference: torch.Tensor) -> torch.Tensor:
    """Check that `attention_mask` is an additive float mask broadcastable to `(batch, num_heads, tokens, tokens)`
    and return it on the device and in the dtype of `reference` (the blocks' input)."""
    target = (batch, num_heads, tokens, tokens)
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a float tensor broadcastable to {target} (batch, heads, tokens, "
                        f"tokens), got {type(attention_mask).__name__}")
    if not attention_mask.is_floating_point():
        raise TypeError(f"attention_mask must be an additive float mask (0 = attend, large negative = blocked), got "
                        f"{attention_mask.dtype}; convert a bool mask with masked_fill(torch.finfo(dtype).min)")
    shape = tuple(attention_mask.shape)
    if len(shape) > 4 or any(size not in (1, full) for size, full in zip(shape[::-1], target[::-1])):
        raise ValueError(f"attention_mask of shape {shape} does not broadcast to {target} (batch, heads, tokens, "
                         f"tokens; tokens = prefix tokens + encoded patch tokens)")
    return attention_mask.to(device=reference.device, dtype=reference.dtype)


class VitEmbeddings(nn.Module):
    """Patch embedding, prefix tokens ([CLS], registers), optional mask token, absolute position embeddings."""

    def __init__(self, config: VitConfig):
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.grid_size = config.grid_size
        self.num_prefix_tokens = config.num_prefix_tokens
        self.patch_embed = PatchEmbed(config.patch_size, config.num_channels, dim, use_norm=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.class_token else None
        self.register_tokens = (nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
                                if config.num_register_tokens else None)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.use_mask_token else None
        # the table covers the prefix tokens too unless no_embed_class (timm's two layouts)
        self.num_embedded_prefix = 0 if config.no_embed_class else self.num_prefix_tokens
        table = torch.zeros(1, self.num_embedded_prefix + config.num_patches, dim)
        if config.position_embedding_type == "learned":
            self.position_embeddings = nn.Parameter(table)
        else:  # the fixed sin-cos table is a (saved) buffer: same key, so a fine-tuned "learned" model loads it
            self.register_buffer("position_embeddings", self.fixed_position_embeddings())
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def fixed_position_embeddings(self) -> torch.Tensor:
        """MAE's sin-cos table at the configured grid (zero rows for the embedded prefix tokens)."""
        return sincos_2d_position_embedding(self.grid_size, self.config.hidden_size, self.num_embedded_prefix)

    def position_embeddings_for(self, grid: tuple[int, int], interpolate: bool) -> torch.Tensor:
        """The position table for a `grid` of patches, resized bicubically if `interpolate`."""
        if tuple(grid) == tuple(self.grid_size):
            return self.position_embeddings
        if not interpolate:
            raise ValueError(
                f"Input gives a {grid[0]}x{grid[1]} patch grid but the position embeddings were built for "
                f"{self.grid_size[0]}x{self.grid_size[1]} (image_size {self.config.image_size}); resize the images "
                f"or pass interpolate_pos_encoding=True"
            )
        return resample_position_embeddings(self.position_embeddings, self.grid_size, grid, self.num_embedded_prefix,
                                            antialias=self.config.interpolate_antialias)

    def check_image_size(self, height: int, width: int, interpolate_pos_encoding: bool) -> None:
        """Without `interpolate_pos_encoding`, only the configured image size is accepted."""
        native = self.config.image_size_2d
        if not interpolate_pos_encoding and (height, width) != tuple(native):
            raise ValueError(
                f"Input image size {height}x{width} doesn't match the model's image_size {native[0]}x{native[1]} "
                f"(patch grid {self.grid_size[0]}x{self.grid_size[1]}, patch_size {self.config.patch_size}); resize "
                f"the images (e.g. with the model's image processor) or pass interpolate_pos_encoding=True"
            )

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False,
                ids_keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Returns the prefix tokens `(B, P, C)` and the patch tokens `(B, N, C)`, both with their positions added,
        and the patch grid. With `ids_keep` `(B, V)`, only those patches are embedded and returned, `(B, V, C)` in
        `ids_keep` order: the same values as gathering them afterwards, but removed patches cost nothing."""
        height, width = pixel_values.shape[-2:]
        self.check_image_size(height, width, interpolate_pos_encoding)
        patch_h, patch_w = self.patch_embed.patch_size
        visible_only = ids_keep is not None and not height % patch_h and not width % patch_w
        if visible_only:  # embed a strip of the kept patches only
            grid = (height // patch_h, width // patch_w)
            tokens, _ = self.patch_embed(gather_patches(pixel_values, ids_keep, (patch_h, patch_w)))
            if bool_masked_pos is not None:
                bool_masked_pos = bool_masked_pos.gather(1, ids_keep)
        else:
            tokens, grid = self.patch_embed(pixel_values)
        batch = tokens.shape[0]
        if bool_masked_pos is not None:
            tokens = torch.where(bool_masked_pos.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        positions = self.position_embeddings_for(grid, interpolate_pos_encoding)
        patch_positions = positions[:, self.num_embedded_prefix:]
        if visible_only:
            tokens = tokens + gather_tokens(patch_positions.expand(batch, -1, -1), ids_keep)
        else:
            tokens = tokens + patch_positions
            if ids_keep is not None:  # sides not multiples of the patch: zero-padded convolution, then gather
                tokens = gather_tokens(tokens, ids_keep)
        prefix = [t for t in (self.cls_token, self.register_tokens) if t is not None]
        if prefix:
            prefix = torch.cat(prefix, dim=1)
            if self.num_embedded_prefix:
                prefix = prefix + positions[:, :self.num_embedded_prefix]
            prefix = prefix.expand(batch, -1, -1)
        else:
            prefix = tokens.new_zeros(batch, 0, tokens.shape[-1])
        return prefix, tokens, grid


class VitPreTrainedModel(ZooPreTrainedModel):
    config: VitConfig
    base_model_prefix = "vit"
    _no_split_modules = ["VitEmbeddings", "TransformerBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """timm's ViT initialisation: truncated normal (std `initializer_range`) for linear/conv weights and the
        learned position table, zero biases, unit LayerNorms, tiny normal prefix tokens; the sin-cos table is
        rebuilt from the config."""
        std = self.config.initializer_range
        if init_common_weights(module, std, trunc_normal_types=(nn.Linear, nn.Conv2d)):
            return
        if isinstance(module, LayerScale):
            init.constant_(module.gamma, module.init_value)
        elif isinstance(module, VitEmbeddings):
            if self.config.position_embedding_type == "sincos":
                init.copy_(module.position_embeddings, module.fixed_position_embeddings())
            else:
                init.trunc_normal_(module.position_embeddings, std=std)
            for token in (module.cls_token, module.register_tokens):
                if token is not None:
                    init.normal_(token, std=1e-6)
            if module.mask_token is not None:
                init.normal_(module.mask_token, std=std)


class VitModel(VitPreTrainedModel):
    """The ViT encoder; with `noise`/`mask_ratio` or `mask` it encodes only the visible patches (see module doc)."""

    def __init__(self, config: VitConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = VitEmbeddings(config)
        self.blocks = nn.ModuleList(self.build_block(config, index, rate) for index, rate in
                                    enumerate(drop_path_rates(config.drop_path_rate, config.num_hidden_layers)))
        # with fc_norm the final norm moves after pooling (timm / MAE fine-tuning)
        self.layernorm = nn.Identity() if config.fc_norm else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.fc_norm else None
        self.pooler = None
        if config.use_pooler and add_pooling_layer:  # transformers' ViTPooler
            self.pooler = nn.Sequential()
            self.pooler.add_module("dense", nn.Linear(config.hidden_size, config.hidden_size))
            self.pooler.add_module("activation", nn.Tanh())
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    def _masking(self, batch: int, num_patches: int, device: torch.device, noise, mask_ratio, mask):
        """Validate the masking arguments for `batch` images of `num_patches` patches on `device` and return
        `MaskingIndices` (or None when nothing is removed)."""
        if mask is not None:
            if noise is not None or mask_ratio is not None:
                raise ValueError("pass either an explicit mask or noise/mask_ratio, not both")
            return masking_from_mask(mask.to(device), batch, num_patches)
        if noise is None and mask_ratio is None:
            return None
        if mask_ratio is None:
            raise ValueError("noise needs a mask_ratio in [0, 1) (the fraction of patches to remove)")
        check_mask_ratio(mask_ratio)
        if noise is None:
            noise = torch.rand(batch, num_patches, device=device)
        return random_masking(noise.to(device), mask_ratio, batch, num_patches)

    def build_block(self, config: VitConfig, index: int, drop_path: float, attention: nn.Module | None = None
                    ) -> nn.Module:
        """Encoder block `index` (a pre-norm `TransformerBlock`, optionally with another `attention`); models that
        change the block or its attention (GMM-ViT, Sparsifiner) override this instead of rebuilding `blocks`."""
        return TransformerBlock(config, config.hidden_size, config.num_attention_heads, drop_path=drop_path,
                                attention=attention, **vit_block_kwargs(config))

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, bool_masked_pos: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, mask_ratio: float | None = None, mask: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, attention_mask: torch.Tensor | None = None,
                **kwargs) -> VitModelOutput:
        r"""
        bool_masked_pos: `(batch, num_patches)` bool; those patch embeddings become the mask token (all encoded).
        noise: `(batch, num_patches)` float; with `mask_ratio`, MAE's random masking (smallest noise kept).
        mask_ratio: fraction of patches to remove, in [0, 1); without `noise`, uniform noise is drawn.
        mask: `(batch, num_patches)` bool, True = removed; every row removes as many patches.
        interpolate_pos_encoding: resize the position table to the input's patch grid.
        attention_mask: additive float mask given to every block, broadcastable to `(batch, heads, P + V, P + V)`
            over the encoded tokens (prefix first, then the encoded patches in `ids_keep` order).
        """
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        if bool_masked_pos is not None:
            self._check_bool_masked_pos(bool_masked_pos, pixel_values)
        height, width = pixel_values.shape[-2:]
        self.embeddings.check_image_size(height, width, interpolate_pos_encoding)
        patch = self.config.patch_size
        masking = self._masking(pixel_values.shape[0], -(-height // patch) * -(-width // patch),
                                    pixel_values.device, noise, mask_ratio, mask)
        # only the kept patches are embedded and encoded: removed ones are never computed nor attended to
        prefix, tokens, _ = self.embeddings(pixel_values, bool_masked_pos, interpolate_pos_encoding,
                                            ids_keep=masking.ids_keep if masking is not None else None)
        hidden = self.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        if attention_mask is not None:
            attention_mask = check_attention_mask(attention_mask, hidden.shape[0], self.config.num_attention_heads,
                                                  hidden.shape[1], hidden)
        hidden, all_hidden, attentions = run_blocks(self.blocks, hidden, attention_mask, output_hidden_states,
                                                    output_attentions)
        sequence = self.layernorm(hidden)
        pooled = self.pool(sequence)
        if self.pooler is not None:
            pooled = self.pooler(pooled)
        return VitModelOutput(
            last_hidden_state=sequence, pooler_output=pooled,
            hidden_states=all_hidden, attentions=attentions,
            mask=masking.mask if masking is not None else None,
            ids_restore=masking.ids_restore if masking is not None else None,
            ids_keep=masking.ids_keep if masking is not None else None,
        )

    def pool(self, sequence: torch.Tensor) -> torch.Tensor:
        """[CLS] or the (fc-normed) mean of the patch tokens of a `(B, P + V, C)` output."""
        if self.config.pooling == "cls":
            return sequence[:, 0]
        pooled = sequence[:, self.config.num_prefix_tokens:].mean(dim=1)
        return self.fc_norm(pooled) if self.fc_norm is not None else pooled

    def _check_bool_masked_pos(self, bool_masked_pos: torch.Tensor, pixel_values: torch.Tensor) -> None:
        if self.embeddings.mask_token is None:
            raise ValueError("bool_masked_pos needs a mask token: build the model with config.use_mask_token=True")
        if not isinstance(bool_masked_pos, torch.Tensor) or bool_masked_pos.dtype != torch.bool:
            raise TypeError("bool_masked_pos must be a bool tensor of shape (batch, num_patches), True = masked")
        patch = self.config.patch_size
        patches = -(-pixel_values.shape[-2] // patch) * -(-pixel_values.shape[-1] // patch)
        if bool_masked_pos.ndim != 2 or tuple(bool_masked_pos.shape) != (pixel_values.shape[0], patches):
            raise ValueError(f"bool_masked_pos must have shape ({pixel_values.shape[0]}, {patches}) (one entry per "
                             f"patch), got {tuple(bool_masked_pos.shape)}")


class VitForImageClassification(VitPreTrainedModel):
    """ViT with a linear classifier on the pooled features ([CLS] or fc-normed mean, `config.pooling`)."""

    def __init__(self, config: VitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = VitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                bool_masked_pos: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> ImageClassifierOutput:
        outputs = self.vit(pixel_values, bool_masked_pos=bool_masked_pos,
                           interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           return_dict=True)  # the encoder's output is used by field, whatever config.return_dict
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            check_labels(labels, logits, self.num_labels)
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                     attentions=outputs.attentions)


__all__ = ["VitPreTrainedModel", "VitModel", "VitForImageClassification", "VitModelOutput", "VitEmbeddings",
           "check_attention_mask"]
