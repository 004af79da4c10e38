"""Swin Transformer: Hierarchical Vision Transformer using Shifted Windows (Liu et al., ICCV 2021).

Paper: https://arxiv.org/abs/2103.14030 - official code: https://github.com/microsoft/Swin-Transformer (MIT).

The network is the official one, block for block: patch embedding + LayerNorm, stages of (shifted-)window
attention blocks with a learned relative position bias, patch merging between stages, final LayerNorm, average
pooling. Proven equal to the official code, timm and transformers by `tests/models/swin/test_parity_swin.py`.

Differences from the official code, none of which changes the output at the configured `image_size`:
- inputs of other sizes are zero-padded to whole patches, windows and even merges (as transformers does: pad, then
  shift) instead of being rejected; each stage's window and shift stay those of `config.image_size`;
- attention runs through transformers' attention interface (SDPA by default); the relative position bias and the
  shifted-window mask are passed together as one additive mask;
- `hidden_states[i]` (i >= 1) is the output of stage i *before* patch merging (timm's `forward_intermediates`
  convention, which is also what `SwinBackbone` returns), not after it as in transformers.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import (
    DropPath,
    Mlp,
    PatchEmbed,
    get_cpu_tuned_attention_function,
    pad_to_window,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from ...layers.window import window_partition_index
from ...modeling_utils import (
    PooledLinearClassifierMixin,
    NormedStagesBackbone,
    ZooPreTrainedModel,
    check_pixel_values,
    hierarchical_encoder_output,
    init_common_weights,
    run_map_stages,
)
from .configuration_swin import SwinConfig


@dataclass
class SwinModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, tokens, hidden_size)` after the final LayerNorm.
    pooler_output: `(batch, hidden_size)`, the average of the last stage's tokens.
    hidden_states: the patch embeddings, then each stage's output before patch merging, as `(batch, tokens, dim)`.
    reshaped_hidden_states: the same maps as `(batch, dim, height, width)`.
    attentions: per stage, the attention probabilities of its last block, `(batch * windows, heads, N, N)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# How many tokens a stage sends through its blocks at once, in whole images (see `SwinStage.forward`). At 224 px:
# one image at a time in stage 1 (56x56 tokens), 5 in stage 2, 20 in stage 3. Smaller groups gain no more on CPU
# and only add kernel launches.
_TOKENS_PER_GROUP = 4096


class SwinWindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows with a learned relative position bias (§3.2)."""

    def __init__(self, config: SwinConfig, dim: int, num_heads: int, window_size: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.window_size = (window_size, window_size)
        self.is_causal = False
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)

    def forward(self, windows: torch.Tensor, shift_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`windows`: `(B * nW, N, C)`; `shift_mask`: `(nW, N, N)` additive mask of a shifted block, or None."""
        batch_windows, tokens, channels = windows.shape
        # q/k/v stay strided views of the fused projection: SDPA reads them in place
        qkv = self.qkv(windows).view(batch_windows, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)

        # contiguous: the gathered bias is heads-last in memory, and an SDPA mask whose key dim is not contiguous
        # gets copied inside every call (+35% for a first-stage shifted block on CPU)
        mask = relative_position_bias(self.relative_position_bias_table, self.relative_position_index)
        mask = mask.contiguous().unsqueeze(0)
        if shift_mask is not None:
            mask = mask + shift_mask.unsqueeze(1)  # (nW, heads, N, N)
        mask = mask.to(query.dtype)
        if mask.shape[0] not in (1, batch_windows):  # several images: one mask per window (SDPA's fast CPU path is 4-D)
            mask = mask.repeat(batch_windows // mask.shape[0], 1, 1, 1)
        attention = get_cpu_tuned_attention_function(self.config, query, key, mask, output_attentions)
        out, probs = attention(
            self, query, key, value, mask, scaling=self.scaling,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
        )
        out = self.proj_drop(self.proj(out.reshape(batch_windows, tokens, channels)))
        return out, (probs if output_attentions else None)


class SwinBlock(GradientCheckpointingLayer):
    """One Swin block: (S)W-MSA and an MLP, each pre-normed with a residual connection (Eq. 3 of the paper)."""

    def __init__(self, config: SwinConfig, dim: int, num_heads: int, window_size: int, shift_size: int,
                 drop_path: float):
        super().__init__()
        self.window_size = (window_size, window_size)
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = SwinWindowAttention(config, dim, num_heads, window_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), hidden_act=config.hidden_act,
                       dropout=config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, shift_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`hidden_states`: `(B, H, W, C)`; `shift_mask` is the stage's mask for the padded map (shifted blocks)."""
        batch, height, width, channels = hidden_states.shape
        x, padded_height, padded_width = pad_to_window(self.norm1(hidden_states), self.window_size)
        padded = padded_height != height or padded_width != width
        if self.shift_size:
            # the cyclic shift and the window partition (and their inverses) as one gather each
            index, inverse = window_partition_index(padded_height, padded_width, self.window_size,
                                                    self.shift_size, x.device)
            windows = x.flatten(1, 2).index_select(1, index).view(-1, self.window_size[0] * self.window_size[1],
                                                                   channels)
            attn_out, probs = self.attn(windows, shift_mask, output_attentions)
            x = attn_out.view(batch, -1, channels).index_select(1, inverse)
            x = x.view(batch, padded_height, padded_width, channels)
        else:
            attn_out, probs = self.attn(window_partition(x, self.window_size), None, output_attentions)
            if padded:
                x = window_reverse(attn_out, self.window_size, padded_height, padded_width)
            else:  # a strided view in map order: the residual sum below does the reordering copy
                wh, ww = self.window_size
                x = attn_out.view(batch, height // wh, width // ww, wh, ww, channels).transpose(2, 3)
                hidden_states = hidden_states.reshape(batch, height // wh, wh, width // ww, ww, channels)
        if padded:
            x = x[:, :height, :width]
        hidden_states = (hidden_states + self.drop_path(x)).reshape(batch, height, width, channels)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))
        return hidden_states, probs


class SwinPatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C), LayerNorm, project to 2C: halves the resolution (§3.1)."""

    def __init__(self, dim: int, layer_norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=layer_norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
            height, width = height + height % 2, width + width % 2
        # (B, H/2, 2, W/2, 2, C) -> (B, H/2, W/2, [w-offset, h-offset], C): the official x0, x1, x2, x3 order.
        x = x.view(batch, height // 2, 2, width // 2, 2, channels).permute(0, 1, 3, 4, 2, 5)
        return self.reduction(self.norm(x.reshape(batch, height // 2, width // 2, 4 * channels)))


class SwinStage(nn.Module):
    """The blocks of one resolution, alternating regular and shifted windows, then (except last) patch merging."""

    def __init__(self, config: SwinConfig, stage_index: int, resolution: tuple[int, int], drop_paths: list[float]):
        super().__init__()
        dim = config.embed_dim * 2**stage_index
        window = config.window_size
        shift = window // 2
        if min(resolution) <= window:  # one window covers the map: no shift (the official rule)
            window, shift = min(resolution), 0
        self.window_size = (window, window)
        self.shift_size = shift
        self.blocks = nn.ModuleList(
            SwinBlock(config, dim, config.num_heads[stage_index], window, 0 if i % 2 == 0 else shift, drop_paths[i])
            for i in range(config.depths[stage_index])
        )
        last = stage_index == config.num_layers - 1
        self.downsample = None if last else SwinPatchMerging(dim, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        """Returns (input of the next stage, this stage's features before merging, last block's attention)."""
        shift_mask = None
        if self.shift_size and len(self.blocks) > 1:
            padded_h = -(-x.shape[1] // self.window_size[0]) * self.window_size[0]
            padded_w = -(-x.shape[2] // self.window_size[1]) * self.window_size[1]
            shift_mask = shifted_window_mask(padded_h, padded_w, self.window_size, self.shift_size,
                                             device=x.device, dtype=x.dtype)
        # Images never interact inside a stage, so a large batch goes through the blocks a few whole images at a
        # time: a group's wide intermediates (q/k/v, attention masks, the 4x MLP hidden) then stay in cache instead
        # of making round trips to memory. Same result; for Swin-T at batch 8 on a 2-core CPU, ~10% faster and
        # half the peak activation memory. Not when autograd records: every intermediate is kept for the backward
        # pass anyway, and the smaller matrix products make a bf16 training step ~5% slower.
        group = x.shape[0] if torch.is_grad_enabled() else max(1, _TOKENS_PER_GROUP // (x.shape[1] * x.shape[2]))
        features, attentions = [], []
        for images in x.split(group):
            probs = None
            for block in self.blocks:
                images, probs = block(images, shift_mask, output_attentions)
            features.append(images)
            attentions.append(probs)
        features = torch.cat(features) if len(features) > 1 else features[0]
        probs = torch.cat(attentions) if output_attentions and len(attentions) > 1 else attentions[0]
        x = self.downsample(features) if self.downsample is not None else features
        return x, features, probs


class SwinPreTrainedModel(ZooPreTrainedModel):
    config: SwinConfig
    base_model_prefix = "swin"
    _no_split_modules = ["SwinBlock", "SwinPatchMerging"]
    # Official checkpoints carry these buffers; they are rebuilt from the config instead.
    _keys_to_ignore_on_load_unexpected = [r"relative_position_index", r"attn_mask"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation: truncated normal (std `initializer_range`) for linear weights, the relative
        position tables and the absolute position embedding; zero biases; unit LayerNorms."""
        std = self.config.initializer_range
        if init_common_weights(module, std):
            return
        if isinstance(module, nn.Conv2d):
            super()._init_weights(module)
        elif isinstance(module, SwinWindowAttention):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            init.copy_(module.relative_position_index, relative_position_index(module.window_size))
        elif isinstance(module, SwinEmbeddings) and module.position_embeddings is not None:
            init.trunc_normal_(module.position_embeddings, std=std)


class SwinEmbeddings(nn.Module):
    """Patch embedding (4x4 conv + LayerNorm), optional learned absolute positions, dropout."""

    def __init__(self, config: SwinConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.patch_size, config.num_channels, config.embed_dim,
                                      use_norm=config.patch_norm, layer_norm_eps=config.layer_norm_eps)
        grid = config.stage_resolutions()[0]
        self.grid_size = grid
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, grid[0] * grid[1], config.embed_dim)) if config.use_absolute_embeddings
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """Returns patch tokens as a `(B, H/p, W/p, C)` map."""
        tokens, grid = self.patch_embed(pixel_values)
        if self.position_embeddings is not None:
            tokens = tokens + self._position_embeddings(grid, interpolate_pos_encoding)
        return self.dropout(tokens).view(tokens.shape[0], grid[0], grid[1], -1)

    def _position_embeddings(self, grid: tuple[int, int], interpolate: bool) -> torch.Tensor:
        if tuple(grid) == tuple(self.grid_size):
            return self.position_embeddings
        if not interpolate:
            raise ValueError(
                f"Input gives a {grid[0]}x{grid[1]} patch grid but the absolute position embedding was learned for "
                f"{self.grid_size[0]}x{self.grid_size[1]}; pass interpolate_pos_encoding=True to resize it"
            )
        pos = self.position_embeddings.reshape(1, *self.grid_size, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)


class SwinModel(SwinPreTrainedModel):
    """The Swin encoder: returns token features and their average (`pooler_output`)."""

    def __init__(self, config: SwinConfig, add_pooling_layer: bool = True, add_final_norm: bool = True):
        super().__init__(config)
        self.num_features = config.hidden_size
        self.embeddings = SwinEmbeddings(config)
        total = sum(config.depths)  # stochastic depth grows linearly with depth (the official decay rule)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(config.depths[:i]) for i in range(config.num_layers)]
        self.stages = nn.ModuleList(
            SwinStage(config, i, res, rates[starts[i]:starts[i] + config.depths[i]])
            for i, res in enumerate(config.stage_resolutions())
        )
        # the backbone normalises each returned stage itself and has no use for the final norm (an unused parameter
        # would also break DistributedDataParallel without find_unused_parameters)
        self.layernorm = nn.LayerNorm(self.num_features, eps=config.layer_norm_eps) if add_final_norm else None
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, interpolate_pos_encoding: bool = False,
                **kwargs) -> SwinModelOutput:
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        x = self.embeddings(pixel_values, interpolate_pos_encoding)
        x, maps, attentions = run_map_stages(x, self.stages, output_hidden_states, output_attentions)
        return hierarchical_encoder_output(SwinModelOutput, x, maps, attentions, self.layernorm, self.add_pooling_layer)


class SwinForImageClassification(PooledLinearClassifierMixin, SwinPreTrainedModel):
    """Swin with a linear classifier on the pooled features (the official `head`)."""

    def __init__(self, config: SwinConfig):
        super().__init__(config)
        self.add_pooled_classifier(SwinModel(config), config.hidden_size)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                interpolate_pos_encoding: bool = False, **kwargs) -> ImageClassifierOutput:
        return self.classify_pooled(pixel_values, labels, kwargs, output_hidden_states=output_hidden_states,
                                    output_attentions=output_attentions,
                                    interpolate_pos_encoding=interpolate_pos_encoding)


class SwinBackbone(NormedStagesBackbone, SwinPreTrainedModel):
    """NCHW feature maps of the selected stages (`config.out_features`), each with its own LayerNorm, for detection
    and segmentation heads (the official repo's detection/segmentation backbone adds the same norms)."""

    # a classification checkpoint's final norm and head are not part of the backbone
    _keys_to_ignore_on_load_unexpected = SwinPreTrainedModel._keys_to_ignore_on_load_unexpected + [
        r"^swin\.layernorm\.", r"^classifier\."]

    def __init__(self, config: SwinConfig):
        super().__init__(config)
        self.num_features = [config.embed_dim] + [config.embed_dim * 2**i for i in range(config.num_layers)]
        self.swin = SwinModel(config, add_pooling_layer=False, add_final_norm=False)
        self.build_stage_norms(config.layer_norm_eps)
        self.post_init()


__all__ = ["SwinPreTrainedModel", "SwinModel", "SwinForImageClassification", "SwinBackbone"]
