"""PPMA: Polyline Path Masked Attention for Vision Transformer (Zhao et al., NeurIPS 2025, arXiv 2506.15940).

Official code: https://github.com/zhongchenzhao/PPMA (Apache-2.0), `classification/models/PPMA.py` (an RMT-based
hierarchical ViT). The network, block for block: a convolutional stem (four 3x3 convs with BatchNorm, stride 4);
four stages of blocks `x + dwconv3x3(x)`, `x + attn(LN(x))`, `x + FFN(LN(x))` (FFN: fc1, GELU, `+ dwconv3x3`, fc2);
a 3x3 stride-2 conv + BatchNorm between stages. The attention adds raster rotary embeddings to q/k, a 5x5
depthwise "LePE" of v to its output, and a Mamba2-style structured mask to its logits: every token predicts a
horizontal and a vertical decay (`softplus(dt + dt_bias) * -exp(A_log)`, per head), and the mask of a query/key
pair is the accumulated decay along the polyline path between them (`layers/structured_mask.py`).
- "chunkwise" stages (PPMA-T: 1-2) attend along rows and columns separately (each with its 1-D mask) and average
  row-then-column with column-then-row;
- the other stages use full attention with the 2-D polyline path mask, averaging its two polyline orders.
The classifier is Linear(C, 1024) + BatchNorm + Swish on every token, average pooling, Linear.

Proven equal to the official code by `tests/models/ppma/test_parity_ppma.py` (stored official outputs).
Differences from the official code, none of which changes the outputs:
- attention runs through transformers' attention interface (SDPA by default). The axial stages make three calls
  (rows; columns on [v, row output] at once; rows again) instead of materialising both probability matrices
  (with eager attention the row probabilities are reused for the third);
  the full stages make one call per polyline order;
- the rotary frequencies are a non-persistent buffer rebuilt from the config (the converter checks the
  checkpoint's copy); LayerScale gammas are `(C,)` instead of `(1, 1, 1, C)`;
- `PpmaModel` ends at the last stage (`pooler_output` is the mean of its tokens); the official pre-logits
  (projection, BatchNorm, Swish, pooling) belong to `PpmaForImageClassification`'s head;
- `output_attentions` returns, per stage, the effective token-to-token attention of its last block
  (`(B, heads, HW, HW)`, rows sum to one); for axial stages that is the average of the two products of the row and
  column attention matrices.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, LayerScale, get_attention_function
from ...layers.rotary import apply_rotary, grid_rotary_sin_cos, rotary_frequencies
from ...layers.structured_mask import polyline_path_mask, segment_sum
from ...modeling_utils import (
    NormedStagesBackbone,
    ZooPreTrainedModel,
    check_pixel_values,
    hierarchical_encoder_output,
    image_classifier_output,
    init_common_weights,
    run_map_stages,
)
from .configuration_ppma import PpmaConfig

# initial values of the decay parameters (official PathEmbeding2D defaults, Mamba2's)
_A_INIT_RANGE = (1.0, 1.1)
_DT_MIN, _DT_MAX, _DT_INIT_FLOOR = 0.001, 0.1, 1e-4


@dataclass
class PpmaModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, tokens, hidden_size)`, the last stage's tokens.
    pooler_output: `(batch, hidden_size)`, their average.
    hidden_states: the stem output, then each stage's output before downsampling, as `(batch, tokens, dim)`.
    reshaped_hidden_states: the same maps as `(batch, dim, height, width)`.
    attentions: per stage, the effective attention of its last block, `(batch, heads, tokens, tokens)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class PpmaDepthwiseConv(nn.Conv2d):
    """Depthwise conv applied to a channels-last `(B, H, W, C)` map."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PpmaPathDecay(nn.Module):
    """Per-token, per-head horizontal and vertical log-decays (`dt_linear` reads each head's slice of the input)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.dt_linear = nn.Linear(dim // num_heads, 2, bias=False)
        self.dt_bias = nn.Parameter(torch.zeros(num_heads))
        self.A_log = nn.Parameter(torch.zeros(num_heads))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, H, W, C)` -> horizontal and vertical log-decays, each `(B, heads, H, W)`, all <= 0."""
        batch, height, width, channels = x.shape
        dt = self.dt_linear(x.view(batch, height, width, self.num_heads, channels // self.num_heads))
        decay = F.softplus(dt + self.dt_bias[:, None]) * -torch.exp(self.A_log)[:, None]  # (B, H, W, heads, 2)
        decay = decay.permute(4, 0, 3, 1, 2)
        return decay[0], decay[1]


class PpmaAttention(nn.Module):
    """Polyline path masked attention with raster rotary q/k and a 5x5 depthwise LePE on v."""

    def __init__(self, config: PpmaConfig, dim: int, num_heads: int, chunkwise: bool):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.chunkwise = chunkwise
        self.is_causal = False
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.lepe = PpmaDepthwiseConv(dim, 5)
        self.out_proj = nn.Linear(dim, dim)
        self.path_embed = PpmaPathDecay(dim, num_heads)

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor, output_attentions: bool = False):
        batch, height, width, channels = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        v = self.v_proj(x)
        lepe = self.lepe(v)
        # (B, heads, H, W, d)
        q = apply_rotary(self.q_proj(x).view(batch, height, width, heads, head_dim).permute(0, 3, 1, 2, 4), sin, cos)
        k = apply_rotary(self.k_proj(x).view(batch, height, width, heads, head_dim).permute(0, 3, 1, 2, 4), sin, cos)
        v = v.view(batch, height, width, heads, head_dim).permute(0, 3, 1, 2, 4)
        alpha, beta = self.path_embed(x)
        attention = get_attention_function(self.config, output_attentions)
        if self.chunkwise:
            out, probs = self._axial(attention, q, k, v, alpha, beta, output_attentions)
        else:
            out, probs = self._full(attention, q, k, v, alpha, beta, output_attentions)
        out = out.reshape(batch, height, width, channels) + lepe
        return self.out_proj(out), probs

    def _full(self, attention, q, k, v, alpha, beta, output_attentions):
        """Full attention, once with each polyline order's mask; the two outputs are averaged."""
        batch, heads, height, width, head_dim = q.shape
        q, k, v = (t.reshape(batch, heads, height * width, head_dim) for t in (q, k, v))
        outputs, probs = [], []
        for vertical_first in (False, True):
            mask = polyline_path_mask(alpha, beta, vertical_first=vertical_first)
            out, p = attention(self, q, k, v, mask, scaling=self.scaling, dropout=0.0)
            outputs.append(out)
            probs.append(p)
        probs = 0.5 * (probs[0] + probs[1]) if output_attentions else None
        return 0.5 * (outputs[0] + outputs[1]), probs  # (B, HW, heads, d)

    def _axial(self, attention, q, k, v, alpha, beta, output_attentions):
        """Row attention R and column attention C (each with its 1-D structured mask): (C R v + R C v) / 2."""
        batch, heads, height, width, head_dim = q.shape
        # rows: batch (B, H), sequence W; columns: batch (B, W), sequence H
        q_row, k_row = (t.transpose(1, 2).reshape(batch * height, heads, width, head_dim) for t in (q, k))
        q_col, k_col = (t.permute(0, 3, 1, 2, 4).reshape(batch * width, heads, height, head_dim) for t in (q, k))
        mask_row = segment_sum(alpha).transpose(1, 2).reshape(batch * height, heads, width, width)
        mask_col = segment_sum(beta.transpose(-1, -2)).transpose(1, 2).reshape(batch * width, heads, height, height)
        v_row = v.transpose(1, 2).reshape(batch * height, heads, width, head_dim)
        # R v: (B*H, W, heads, d) -> (B, W, heads, H, d) to be attended along columns together with v
        row_v, p_row = attention(self, q_row, k_row, v_row, mask_row, scaling=self.scaling, dropout=0.0)
        row_v = row_v.view(batch, height, width, heads, head_dim).permute(0, 2, 3, 1, 4)
        both = torch.cat([v.permute(0, 3, 1, 2, 4), row_v], dim=-1).reshape(batch * width, heads, height, 2 * head_dim)
        col_out, p_col = attention(self, q_col, k_col, both, mask_col, scaling=self.scaling, dropout=0.0)
        col_out = col_out.view(batch, width, height, heads, 2 * head_dim)
        col_v, col_row_v = col_out[..., :head_dim], col_out[..., head_dim:]  # C v and C R v, (B, W, H, heads, d)
        col_v = col_v.permute(0, 2, 3, 1, 4).reshape(batch * height, heads, width, head_dim)
        if p_row is not None:  # the backend returned R (eager): reuse it rather than recompute it
            row_col_v = torch.matmul(p_row, col_v).transpose(1, 2)
        else:
            row_col_v, _ = attention(self, q_row, k_row, col_v, mask_row, scaling=self.scaling, dropout=0.0)
        out = 0.5 * (col_row_v.transpose(1, 2) + row_col_v.view(batch, height, width, heads, head_dim))
        probs = None
        if output_attentions:
            p_row = p_row.view(batch, height, heads, width, width).transpose(1, 2)  # [b, g, row, wi, wj]
            p_col = p_col.view(batch, width, heads, height, height).transpose(1, 2)  # [b, g, col, hi, hj]
            # C R: [(hi, wi), (hj, wj)] = C[col wi](hi, hj) * R[row hj](wi, wj)
            col_row = p_col.permute(0, 1, 3, 2, 4).unsqueeze(-1) * p_row.permute(0, 1, 3, 2, 4).unsqueeze(2)
            # R C: [(hi, wi), (hj, wj)] = R[row hi](wi, wj) * C[col wj](hi, hj)
            row_col = p_row.unsqueeze(4) * p_col.permute(0, 1, 3, 4, 2).unsqueeze(3)
            probs = (0.5 * (col_row + row_col)).reshape(batch, heads, height * width, height * width)
        return out, probs


class PpmaFeedForward(nn.Module):
    """fc1 -> activation -> `+ dwconv3x3` -> fc2 (RMT's FFN)."""

    def __init__(self, dim: int, hidden_dim: int, hidden_act: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = ACT2FN[hidden_act]
        self.dwconv = PpmaDepthwiseConv(hidden_dim, 3)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x))


class PpmaBlock(GradientCheckpointingLayer):
    """`x + cpe(x)`, then pre-norm attention and FFN residuals (optionally LayerScaled, with stochastic depth)."""

    def __init__(self, config: PpmaConfig, stage: int, drop_path: float):
        super().__init__()
        dim = config.embed_dims[stage]
        self.cpe = PpmaDepthwiseConv(dim, 3)
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = PpmaAttention(config, dim, config.num_heads[stage], config.chunkwise_recurrents[stage])
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.ffn = PpmaFeedForward(dim, int(config.mlp_ratios[stage] * dim), config.hidden_act)
        use_scale = config.layerscales[stage]
        self.ls1 = LayerScale(dim, config.layer_init_values) if use_scale else nn.Identity()
        self.ls2 = LayerScale(dim, config.layer_init_values) if use_scale else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor, output_attentions: bool = False):
        x = x + self.cpe(x)
        attn_out, probs = self.attn(self.norm1(x), sin, cos, output_attentions)
        x = x + self.drop_path(self.ls1(attn_out))
        x = x + self.drop_path(self.ls2(self.ffn(self.norm2(x))))
        return x, probs


class PpmaDownsample(nn.Module):
    """3x3 stride-2 conv + BatchNorm on a channels-last map (halves the resolution, rounding up)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.reduction = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.reduction(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)


class PpmaStage(nn.Module):
    """The blocks of one resolution (sharing its rotary angles), then (except last) downsampling."""

    def __init__(self, config: PpmaConfig, stage: int, drop_paths: list[float]):
        super().__init__()
        self.head_dim = config.embed_dims[stage] // config.num_heads[stage]
        self.register_buffer("rotary_frequencies", rotary_frequencies(self.head_dim), persistent=False)
        self.blocks = nn.ModuleList(PpmaBlock(config, stage, drop_paths[i]) for i in range(config.depths[stage]))
        last = stage == config.num_layers - 1
        self.downsample = None if last else PpmaDownsample(config.embed_dims[stage], config.embed_dims[stage + 1])

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        """Returns (input of the next stage, this stage's features before downsampling, last block's attention)."""
        sin, cos = grid_rotary_sin_cos(self.rotary_frequencies.to(x.dtype), x.shape[1], x.shape[2])
        probs = None
        for block in self.blocks:
            x, probs = block(x, sin, cos, output_attentions)
        return (self.downsample(x) if self.downsample is not None else x), x, probs


class PpmaStem(nn.Module):
    """Conv(3x3, s2) BN GELU Conv(3x3) BN GELU Conv(3x3, s2) BN GELU Conv(3x3) BN; returns `(B, H/4, W/4, C)`."""

    def __init__(self, config: PpmaConfig):
        super().__init__()
        dim, half = config.embed_dims[0], config.embed_dims[0] // 2
        self.proj = nn.Sequential(
            nn.Conv2d(config.num_channels, half, 3, 2, 1), nn.BatchNorm2d(half), nn.GELU(),
            nn.Conv2d(half, half, 3, 1, 1), nn.BatchNorm2d(half), nn.GELU(),
            nn.Conv2d(half, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1), nn.BatchNorm2d(dim),
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).permute(0, 2, 3, 1)


class PpmaPreTrainedModel(ZooPreTrainedModel):
    config: PpmaConfig
    base_model_prefix = "ppma"
    _no_split_modules = ["PpmaBlock", "PpmaDownsample"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation: truncated normal (std `initializer_range`) for every linear weight, zero
        biases, unit norms, Mamba2's `dt_bias` / `A_log` initial values, LayerScale at `layer_init_values`."""
        if init_common_weights(module, self.config.initializer_range):
            return
        if isinstance(module, nn.Conv2d):
            super()._init_weights(module)
        elif isinstance(module, PpmaPathDecay):
            # A ~ U(1, 1.1); dt = exp(U(log dt_min, log dt_max)) clamped at the floor; dt_bias = softplus^-1(dt)
            a = torch.empty(module.A_log.shape, device=module.A_log.device)
            init.uniform_(a, *_A_INIT_RANGE)
            init.copy_(module.A_log, a.log())
            u = torch.empty(module.dt_bias.shape, device=module.dt_bias.device)
            init.uniform_(u, torch.log(torch.tensor(_DT_MIN)).item(), torch.log(torch.tensor(_DT_MAX)).item())
            dt = u.exp().clamp(min=_DT_INIT_FLOOR)
            init.copy_(module.dt_bias, dt + torch.log(-torch.expm1(-dt)))
        elif isinstance(module, LayerScale):
            init.constant_(module.gamma, self.config.layer_init_values)
        elif isinstance(module, PpmaStage):
            init.copy_(module.rotary_frequencies, rotary_frequencies(module.head_dim))


class PpmaModel(PpmaPreTrainedModel):
    """The PPMA encoder: returns the last stage's tokens and their average (`pooler_output`)."""

    def __init__(self, config: PpmaConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.num_features = config.hidden_size
        self.embeddings = PpmaStem(config)
        total = sum(config.depths)  # stochastic depth grows linearly with depth (the official rule)
        rates = torch.linspace(0, config.drop_path_rate, total, device="cpu").tolist()
        starts = [sum(config.depths[:i]) for i in range(config.num_layers)]
        self.stages = nn.ModuleList(
            PpmaStage(config, i, rates[starts[i]:starts[i] + config.depths[i]]) for i in range(config.num_layers)
        )
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> PpmaModelOutput:
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        patch = self.config.patch_size
        if min(pixel_values.shape[-2:]) < patch:
            raise ValueError(
                f"pixel_values of size {tuple(pixel_values.shape[-2:])} is smaller than one {patch}x{patch} patch "
                f"of the convolutional stem; PPMA needs images of at least {patch}x{patch} pixels"
            )
        x, maps, attentions = run_map_stages(self.embeddings(pixel_values), self.stages, output_hidden_states,
                                             output_attentions)
        return hierarchical_encoder_output(PpmaModelOutput, x, maps, attentions, pool=self.add_pooling_layer)


class PpmaHead(nn.Module):
    """The official pre-logits: Linear(C, projection) + BatchNorm + Swish on every token, then average pooling."""

    def __init__(self, config: PpmaConfig):
        super().__init__()
        self.proj = nn.Linear(config.hidden_size, config.projection)
        self.norm = nn.BatchNorm1d(config.projection)
        self.act = nn.SiLU()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`(B, N, C)` -> `(B, projection)`."""
        return self.act(self.norm(self.proj(tokens).transpose(1, 2))).mean(dim=-1)


class PpmaForImageClassification(PpmaPreTrainedModel):
    """PPMA with the official head: pre-logits (projection, BatchNorm, Swish, pooling) and a linear classifier."""

    def __init__(self, config: PpmaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ppma = PpmaModel(config)
        self.head = PpmaHead(config)
        self.classifier = nn.Linear(config.projection, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> ImageClassifierOutput:
        outputs = self.ppma(pixel_values, output_hidden_states=output_hidden_states,
                            output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(self.head(outputs.last_hidden_state))
        return image_classifier_output(self, logits, labels, outputs, **kwargs)


class PpmaBackbone(NormedStagesBackbone, PpmaPreTrainedModel):
    """NCHW feature maps of the selected stages (`config.out_features`), each with its own LayerNorm (the official
    detection/segmentation backbone's `outnorm{i}`)."""

    # a classification checkpoint's head and classifier are not part of the backbone
    _keys_to_ignore_on_load_unexpected = [r"^head\.", r"^classifier\."]

    def __init__(self, config: PpmaConfig):
        super().__init__(config)
        self.num_features = [config.embed_dims[0]] + list(config.embed_dims)
        self.ppma = PpmaModel(config, add_pooling_layer=False)
        self.build_stage_norms(config.backbone_norm_eps)
        self.post_init()


__all__ = ["PpmaPreTrainedModel", "PpmaModel", "PpmaForImageClassification", "PpmaBackbone"]
