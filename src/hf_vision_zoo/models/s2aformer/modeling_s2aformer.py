"""S2AFormer: Strip Self-Attention for Efficient Vision Transformer (Xu, Huang, Jia, Li, Gao, Qi; IEEE TIP 2025).

Paper: https://arxiv.org/abs/2505.22195. **There is no official code and no released weights**: this is a
reconstruction from the paper's abstract and the public summaries of its method section (collected in the catalog's
METHODS.md, §12). Nothing here could be checked against the authors' implementation; the tests prove the stated
properties instead (tests/models/s2aformer/).

What the paper states, and is implemented as stated:
- a hierarchical network of four stages with output strides 4, 8, 16 and 32, each a patch embedding followed by
  `L_i` Hybrid Perception Blocks (HPBs), after a stem of three 3x3 convolutions, the first with stride 2;
- the HPB (pre-norm residuals, as given in the method summaries):
  `f_conv = DWConv(x) + x`, `f_ssa = SSA(LN(f_conv)) + f_conv`, `f_lim = LIM(LN(f_ssa)) + f_ssa`,
  `f_mlp = MLP(LN(f_lim)) + f_lim`;
- Strip Self-Attention (SSA): K and V come from a spatially reduced map (a convolution-based reduction, which the
  paper's ablation prefers; a depth-wise one in the summaries), and Q and K are projected to a compressed channel
  width `d' < C` while V keeps `C` channels, so that
  `SSA(x) = Proj(softmax(Q K^T / sqrt(d_h)) V)`, `Q = x W_q` (N x d'), `K = SR(x) W_k` (N' x d'),
  `V = SR(x) W_v` (N' x C), `N' = N / r^2`, computed per head (`d_h = d' / heads`). The affinity costs
  `O(N N' d')` and the aggregation `O(N N' C)` instead of `O(N^2 C)` each.

Details the available sources do not give, and the choice made here (each is a config field where it is a number):
- stem: the two later 3x3 convs have stride 1, each conv is followed by BatchNorm and GELU, width `stem_channels`
  (32). With the stem at stride 2, the patch embedding of every stage (stage 1 included, since "each stage" has one)
  halves the map, which gives the stated strides 4/8/16/32.
- patch embedding: a 2x2 conv with stride 2 + LayerNorm (odd maps are zero-padded at the bottom/right first), the
  zoo's shared `PatchEmbed`.
- HPB DWConv: a 3x3 depth-wise conv with bias (`local_kernel_size`), without norm; no drop path on that branch
  (the equation has none); drop path on the SSA, LIM and MLP branches; no layer scale (none is mentioned).
- SSA spatial reduction: a depth-wise `r x r` conv with stride `r` then LayerNorm (as in CMT's lightweight attention,
  whose "DWConv(x) + x" unit the HPB shares); none when `r = 1`. Ratios `sr_ratios = (8, 4, 2, 1)` (the common choice
  of PVT/CMT; the paper's values were not available). At other input sizes the map is zero-padded to a multiple of
  `r` before the reduction, so any input of at least 32 px runs.
- Q/K compression: linear (1x1) projections to `C / qk_compression_ratios[i]` channels, default ratio 4 (not
  found; the name "strip" could mean an even thinner Q/K, which the config allows). Softmax scale `d_h^-0.5` with
  `d_h` the compressed per-head width. Heads `(1, 2, 5, 8)` as in PVT/CMT-style models.
- LIM: its role (boundary detail, robustness to translation/rotation) is stated but not its layers; here it is a
  depth-wise `k x k` conv (`lim_kernel_size`, 3), GELU, and a 1x1 (linear) projection. `use_lim=False` removes the
  branch (the paper's ablation compares with and without it).
- MLP: `Linear -> GELU -> Linear` with `mlp_ratio` 4 ("standard FFN").
- head: final LayerNorm, global average pooling and a linear classifier; the backbone adds a LayerNorm per returned
  map (as the zoo's Swin does).
- initialisation: truncated normal (std 0.02) for linear layers, `N(0, sqrt(2 / fan_out))` for convs, unit norms.
- widths/depths of the published variants were not available; the config defaults (widths 64/128/320/512,
  depths 3/4/12/3, 25.7M parameters, 8.84 GFLOPs at 224 px) are a reconstruction sized like Swin-T (28.3M,
  8.98 GFLOPs), not a published model.

Implementation notes: attention runs through the zoo's attention dispatch (SDPA by default, eager when attention
maps are requested; both tested equal). Because V's per-head width differs from Q/K's, PyTorch's CPU SDPA takes its
math path for SSA. A stage runs a large batch a few whole images at a time (same result, less memory).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, Mlp, PatchEmbed, get_attention_function
from ...modeling_utils import (
    PooledLinearClassifierMixin,
    NormedStagesBackbone,
    ZooPreTrainedModel,
    check_pixel_values,
    hierarchical_encoder_output,
    init_common_weights,
    run_map_stages,
)
from .configuration_s2aformer import S2AFormerConfig


@dataclass
class S2AFormerModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, tokens, hidden_size)`, the last stage after the final LayerNorm.
    pooler_output: `(batch, hidden_size)`, the average of those tokens.
    hidden_states: the stem output, then each stage's output, as `(batch, tokens, dim)`.
    reshaped_hidden_states: the same maps as `(batch, dim, height, width)`.
    attentions: per stage, the attention probabilities of its last block, `(batch, heads, N, N')` with `N'` the
        number of reduced key/value tokens.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# Tokens a stage sends through its blocks at once, in whole images (see `S2AFormerStage.forward`).
_TOKENS_PER_GROUP = 4096


def _channels_first_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Apply an NCHW conv to a channels-last `(B, H, W, C)` map, returning channels-last."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class S2AFormerStripSelfAttention(nn.Module):
    """Strip Self-Attention: full-resolution queries attend to spatially reduced keys/values, with Q and K in a
    compressed channel width (`dim // qk_compression_ratio`) and V in the full width."""

    def __init__(self, config: S2AFormerConfig, dim: int, num_heads: int, sr_ratio: int, qk_compression_ratio: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.qk_dim = dim // qk_compression_ratio
        self.head_qk_dim = self.qk_dim // num_heads
        self.head_v_dim = dim // num_heads
        self.scaling = self.head_qk_dim**-0.5
        self.is_causal = False
        self.query = nn.Linear(dim, self.qk_dim, bias=config.qkv_bias)
        if sr_ratio > 1:
            self.reduction = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, groups=dim)
            self.reduction_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        else:
            self.reduction = self.reduction_norm = None
        self.key_value = nn.Linear(dim, self.qk_dim + dim, bias=config.qkv_bias)  # K (d') and V (C), fused
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob) if config.hidden_dropout_prob > 0 else nn.Identity()

    def reduce(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """`(B, H, W, C)` -> the key/value source tokens `(B, N', C)` and their grid `(H', W')`."""
        batch, height, width, channels = x.shape
        if self.reduction is None:
            return x.reshape(batch, height * width, channels), (height, width)
        r = self.sr_ratio
        pad_h, pad_w = (r - height % r) % r, (r - width % r) % r
        if pad_h or pad_w:  # only at input sizes other than config.image_size (validated there)
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        reduced = self.reduction(x.permute(0, 3, 1, 2))
        grid = (reduced.shape[2], reduced.shape[3])
        return self.reduction_norm(reduced.flatten(2).transpose(1, 2)), grid

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Per-head `query (B, h, N, d'/h)`, `key (B, h, N', d'/h)`, `value (B, h, N', C/h)` and the reduced grid."""
        batch, height, width, channels = x.shape
        query = self.query(x).view(batch, height * width, self.num_heads, self.head_qk_dim).transpose(1, 2)
        source, grid = self.reduce(x)
        key, value = self.key_value(source).split([self.qk_dim, channels], dim=-1)
        key = key.reshape(batch, -1, self.num_heads, self.head_qk_dim).transpose(1, 2)
        value = value.reshape(batch, -1, self.num_heads, self.head_v_dim).transpose(1, 2)
        return query, key, value, grid

    def forward(self, x: torch.Tensor, output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`x`: `(B, H, W, C)` (already normalised). Returns `(B, H, W, C)` and the probabilities if requested."""
        batch, height, width, channels = x.shape
        query, key, value, _ = self.project(x)
        attention = get_attention_function(self.config, output_attentions)
        out, probs = attention(self, query, key, value, None, scaling=self.scaling,
                               dropout=self.config.attention_probs_dropout_prob if self.training else 0.0)
        out = self.proj_drop(self.proj(out.reshape(batch, height, width, channels)))
        return out, (probs if output_attentions else None)


class S2AFormerLocalInteraction(nn.Module):
    """The Local Interaction Module (LIM): depth-wise conv, activation, pointwise projection (structure assumed)."""

    def __init__(self, config: S2AFormerConfig, dim: int):
        super().__init__()
        kernel = config.lim_kernel_size
        self.dwconv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.act = ACT2FN[config.hidden_act]
        self.pwconv = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pwconv(self.act(_channels_first_conv(self.dwconv, x)))


class S2AFormerBlock(GradientCheckpointingLayer):
    """Hybrid Perception Block: local DWConv, Strip Self-Attention, LIM and MLP, each with a residual."""

    def __init__(self, config: S2AFormerConfig, stage_index: int, drop_path: float):
        super().__init__()
        dim = config.embed_dims[stage_index]
        kernel = config.local_kernel_size
        self.local_conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = S2AFormerStripSelfAttention(config, dim, config.num_heads[stage_index],
                                                config.sr_ratios[stage_index],
                                                config.qk_compression_ratios[stage_index])
        if config.use_lim:
            self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
            self.lim = S2AFormerLocalInteraction(config, dim)
        else:
            self.norm2 = self.lim = None
        self.norm3 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), hidden_act=config.hidden_act,
                       dropout=config.hidden_dropout_prob)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`x`: `(B, H, W, C)`."""
        x = x + _channels_first_conv(self.local_conv, x)
        attended, probs = self.attn(self.norm1(x), output_attentions)
        x = x + self.drop_path(attended)
        if self.lim is not None:
            x = x + self.drop_path(self.lim(self.norm2(x)))
        x = x + self.drop_path(self.mlp(self.norm3(x)))
        return x, probs


class S2AFormerStem(nn.Module):
    """Three 3x3 conv + BatchNorm + GELU layers, the first with stride 2: `(B, 3, H, W)` -> `(B, H/2, W/2, C)`."""

    def __init__(self, config: S2AFormerConfig):
        super().__init__()
        layers, channels = [], config.num_channels
        for stride in (2, 1, 1):
            layers += [nn.Conv2d(channels, config.stem_channels, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(config.stem_channels), nn.GELU()]
            channels = config.stem_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.layers(pixel_values).permute(0, 2, 3, 1)


class S2AFormerStage(nn.Module):
    """Patch embedding (halves the map) and the stage's Hybrid Perception Blocks."""

    def __init__(self, config: S2AFormerConfig, stage_index: int, drop_paths: list[float]):
        super().__init__()
        in_dim = config.stem_channels if stage_index == 0 else config.embed_dims[stage_index - 1]
        self.patch_embed = PatchEmbed(2, in_dim, config.embed_dims[stage_index], use_norm=True,
                                      layer_norm_eps=config.layer_norm_eps)
        self.blocks = nn.ModuleList(
            S2AFormerBlock(config, stage_index, drop_paths[i]) for i in range(config.depths[stage_index])
        )

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        """`(B, H, W, C_in)` -> `(B, H/2, W/2, C)` and the last block's attention probabilities."""
        tokens, grid = self.patch_embed(x.permute(0, 3, 1, 2))
        x = tokens.view(tokens.shape[0], grid[0], grid[1], -1)
        # Images never interact, so a large batch runs through the blocks a few whole images at a time: each
        # group's wide intermediates (the 4x MLP hidden, the N x N' scores) then stay in cache. Same result.
        group = max(1, _TOKENS_PER_GROUP // (grid[0] * grid[1]))
        outputs, attentions = [], []
        for images in x.split(group):
            probs = None
            for block in self.blocks:
                images, probs = block(images, output_attentions)
            outputs.append(images)
            attentions.append(probs)
        x = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        probs = torch.cat(attentions) if output_attentions and len(attentions) > 1 else attentions[0]
        return x, probs


class S2AFormerPreTrainedModel(ZooPreTrainedModel):
    config: S2AFormerConfig
    base_model_prefix = "s2aformer"
    _no_split_modules = ["S2AFormerBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """Truncated normal (std `initializer_range`) for linear layers, `N(0, sqrt(2 / fan_out))` for convs, zero
        biases, unit norms and reset BatchNorm statistics."""
        if not init_common_weights(module, self.config.initializer_range) and isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            init.normal_(module.weight, mean=0.0, std=(2.0 / fan_out) ** 0.5)
            if module.bias is not None:
                init.zeros_(module.bias)


class S2AFormerModel(S2AFormerPreTrainedModel):
    """The S2AFormer encoder: returns the last stage's tokens and their average (`pooler_output`)."""

    def __init__(self, config: S2AFormerConfig, add_pooling_layer: bool = True, add_final_norm: bool = True):
        super().__init__(config)
        self.num_features = config.hidden_size
        self.stem = S2AFormerStem(config)
        total = sum(config.depths)  # stochastic depth grows linearly with depth
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(config.depths[:i]) for i in range(config.num_layers)]
        self.stages = nn.ModuleList(
            S2AFormerStage(config, i, rates[starts[i]:starts[i] + config.depths[i]]) for i in range(config.num_layers)
        )
        # the backbone normalises each returned map itself: no unused final norm there
        self.layernorm = nn.LayerNorm(self.num_features, eps=config.layer_norm_eps) if add_final_norm else None
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.stem

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> S2AFormerModelOutput:
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        height, width = pixel_values.shape[-2:]
        if min(height, width) < self.config.total_stride:
            raise ValueError(
                f"Image of size {height}x{width} is smaller than the network's total stride "
                f"{self.config.total_stride} (the stride-2 stem and four stride-2 patch embeddings): the last stage "
                f"would have no full token. Resize it to at least "
                f"{self.config.total_stride}x{self.config.total_stride} (the image processor does)."
            )
        x, maps, attentions = run_map_stages(self.stem(pixel_values), self.stages, output_hidden_states,
                                             output_attentions)
        return hierarchical_encoder_output(S2AFormerModelOutput, x, maps, attentions, self.layernorm,
                                           self.add_pooling_layer)


class S2AFormerForImageClassification(PooledLinearClassifierMixin, S2AFormerPreTrainedModel):
    """S2AFormer with a linear classifier on the pooled features."""

    def __init__(self, config: S2AFormerConfig):
        super().__init__(config)
        self.add_pooled_classifier(S2AFormerModel(config), config.hidden_size)
        self.post_init()


class S2AFormerBackbone(NormedStagesBackbone, S2AFormerPreTrainedModel):
    """NCHW feature maps of the selected stages (`config.out_features`: the stem at stride 2, stages at strides
    4/8/16/32), each with its own LayerNorm, for detection and segmentation heads."""

    _keys_to_ignore_on_load_unexpected = [r"^s2aformer\.layernorm\.", r"^classifier\."]

    def __init__(self, config: S2AFormerConfig):
        super().__init__(config)
        self.num_features = [config.stem_channels] + list(config.embed_dims)
        self.s2aformer = S2AFormerModel(config, add_pooling_layer=False, add_final_norm=False)
        self.build_stage_norms(config.layer_norm_eps)
        self.post_init()


__all__ = ["S2AFormerPreTrainedModel", "S2AFormerModel", "S2AFormerForImageClassification", "S2AFormerBackbone",
           "S2AFormerStripSelfAttention", "S2AFormerBlock"]
