"""CvT: Introducing Convolutions to Vision Transformers (Wu et al., ICCV 2021).

Paper: https://arxiv.org/abs/2103.15808 - official code: https://github.com/leoxiaobin/CvT (MIT),
`lib/models/cls_cvt.py`.

The network is the official one, block for block: stages that each start with a convolutional token embedding
(Conv2d with overlapping kernels + LayerNorm, no position embedding), then pre-norm transformer blocks whose q/k/v
come from a convolutional projection (depthwise conv + BatchNorm, keys/values with stride 2) followed by linear
projections; a class token joins in the last stage only; the head is LayerNorm on the class token, then Linear.
Proven equal to transformers' Cvt and to the official code by `tests/models/cvt/test_parity_cvt.py`.

Notes on faithfulness:
- the attention scale is `embed_dim ** -0.5` (the whole width, not one head's), as in the official code;
- the official models run QuickGELU (`hidden_act="quick_gelu"`, the default); transformers' Cvt runs exact GELU,
  so configs converted from transformers set `hidden_act="gelu"` to keep their outputs;
- in eval mode the BatchNorm of each convolutional projection is folded into the depthwise kernel (the same affine
  map, one pass fewer); in training it runs as a normal BatchNorm on batch statistics;
- tokens stay `(B, H*W, C)` throughout; the map a convolution needs is a channels-last view of them (no copies);
- `hidden_states` are the first token embedding's output ("stem"), then each stage's output, as `(B, H*W, C)`
  without the class token; `last_hidden_state` is the last stage's patch tokens, `pooler_output` the normalised
  class token (the classifier's input), `cls_token_value` the class token before that norm (transformers' field).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.backbone_utils import BackboneMixin, filter_output_hidden_states
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BackboneOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, Mlp, get_cpu_tuned_attention_function
from ...modeling_utils import (
    PooledLinearClassifierMixin,
    ZooPreTrainedModel,
    check_pixel_values,
    init_common_weights,
    stage_hidden_states,
)
from .configuration_cvt import CvtConfig


@dataclass
class CvtModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, tokens, hidden_size)` patch tokens of the last stage (no class token, no final norm).
    pooler_output: `(batch, hidden_size)`: the final LayerNorm of the class token (or the mean of the normalised
        tokens when the last stage has no class token), what the classifier reads.
    cls_token_value: `(batch, 1, hidden_size)` the class token at the output of the last stage, or None.
    hidden_states: the first token embedding's output, then each stage's output, as `(batch, tokens, dim)`.
    reshaped_hidden_states: the same maps as `(batch, dim, height, width)`.
    attentions: per stage, the attention probabilities of its last block, `(batch, heads, queries, keys)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    cls_token_value: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(B, H*W, C)` -> `(B, C, H, W)` as a view: for contiguous tokens, a channels-last map (unflatten then permute
    gives exact channels-last strides even for batch 1, which convolutions need to keep the output channels-last)."""
    return tokens.unflatten(1, (height, width)).permute(0, 3, 1, 2)


def map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """`(B, C, H, W)` -> `(B, H*W, C)`; a view when the map is channels-last."""
    return feature_map.flatten(2).transpose(1, 2)


class CvtConvEmbedding(nn.Module):
    """Convolutional token embedding (§3.1): an overlapping strided Conv2d, then LayerNorm over channels."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, padding: int, eps: float):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(feature_map)
        return self.norm(map_to_tokens(x)), (x.shape[2], x.shape[3])


class CvtConvProjection(nn.Module):
    """Depthwise Conv2d + BatchNorm2d (the paper's "dw_bn" convolutional projection, §3.2)."""

    def __init__(self, dim: int, kernel: int, stride: int, padding: int, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size=kernel, stride=stride, padding=padding, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim, eps=eps)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if self.training or not bn.track_running_stats:
            return self.bn(self.conv(feature_map))
        # eval: BatchNorm is a per-channel affine map; fold it into the depthwise kernel and a bias
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        return F.conv2d(feature_map, weight.to(feature_map.dtype), bias.to(feature_map.dtype), self.conv.stride,
                        self.conv.padding, groups=self.conv.groups)


def _build_projection(method: str, dim: int, kernel: int, stride: int, padding: int, eps: float):
    if method == "dw_bn":
        return CvtConvProjection(dim, kernel, stride, padding, eps)
    if method == "avg":
        return nn.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=True)
    return None  # the queries of "avg": the tokens themselves


class CvtAttention(nn.Module):
    """Multi-head attention with convolutional projections: q/k/v = Linear(ConvProj(tokens)), cls token passed by."""

    def __init__(self, config: CvtConfig, stage: int):
        super().__init__()
        dim = config.embed_dim[stage]
        self.config = config
        self.num_heads = config.num_heads[stage]
        self.head_dim = dim // self.num_heads
        self.scaling = dim**-0.5  # the official scale: the whole width
        self.is_causal = False
        self.with_cls_token = config.cls_token[stage]
        self.attention_dropout = config.attention_drop_rate[stage]
        method, kernel, eps = config.qkv_projection_method[stage], config.kernel_qkv[stage], config.batch_norm_eps
        self.conv_proj_q = _build_projection("linear" if method == "avg" else method, dim, kernel,
                                             config.stride_q[stage], config.padding_q[stage], eps)
        self.conv_proj_k = _build_projection(method, dim, kernel, config.stride_kv[stage], config.padding_kv[stage],
                                             eps)
        self.conv_proj_v = _build_projection(method, dim, kernel, config.stride_kv[stage], config.padding_kv[stage],
                                             eps)
        bias = config.qkv_bias[stage]
        self.proj_q = nn.Linear(dim, dim, bias=bias)
        self.proj_k = nn.Linear(dim, dim, bias=bias)
        self.proj_v = nn.Linear(dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.drop_rate[stage]) if config.drop_rate[stage] > 0 else nn.Identity()

    def _project(self, projection, feature_map: torch.Tensor, cls: torch.Tensor | None, tokens: torch.Tensor):
        if projection is None:
            return tokens
        x = map_to_tokens(projection(feature_map))
        return x if cls is None else torch.cat([cls, x], dim=1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, tokens: torch.Tensor, height: int, width: int,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = tokens.shape
        cls, patches = (tokens[:, :1], tokens[:, 1:]) if self.with_cls_token else (None, tokens)
        feature_map = tokens_to_map(patches, height, width)
        if cls is not None:  # the patch tokens start one token in: make the map channels-last-contiguous once
            feature_map = feature_map.contiguous(memory_format=torch.channels_last)
        query = self._heads(self.proj_q(self._project(self.conv_proj_q, feature_map, cls, tokens)))
        key = self._heads(self.proj_k(self._project(self.conv_proj_k, feature_map, cls, tokens)))
        value = self._heads(self.proj_v(self._project(self.conv_proj_v, feature_map, cls, tokens)))
        attention = get_cpu_tuned_attention_function(self.config, query, key, None, output_attentions)
        out, probs = attention(self, query, key, value, None, scaling=self.scaling,
                               dropout=self.attention_dropout if self.training else 0.0)
        out = self.proj_drop(self.proj(out.reshape(batch, query.shape[2], dim)))
        return out, (probs if output_attentions else None)


class CvtBlock(GradientCheckpointingLayer):
    """Pre-norm block: x + DropPath(attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, config: CvtConfig, stage: int, drop_path: float):
        super().__init__()
        dim = config.embed_dim[stage]
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = CvtAttention(config, stage)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio[stage]), hidden_act=config.hidden_act,
                       dropout=config.drop_rate[stage])

    def forward(self, tokens: torch.Tensor, height: int, width: int,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, probs = self.attn(self.norm1(tokens), height, width, output_attentions)
        tokens = tokens + self.drop_path(attn_out)
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens, probs


class CvtStage(nn.Module):
    """Convolutional token embedding, optional class token, then the stage's blocks."""

    def __init__(self, config: CvtConfig, stage: int):
        super().__init__()
        dim = config.embed_dim[stage]
        in_channels = config.num_channels if stage == 0 else config.embed_dim[stage - 1]
        self.patch_embed = CvtConvEmbedding(in_channels, dim, config.patch_sizes[stage], config.patch_stride[stage],
                                            config.patch_padding[stage], config.layer_norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.cls_token[stage] else None
        self.pos_drop = nn.Dropout(config.drop_rate[stage]) if config.drop_rate[stage] > 0 else nn.Identity()
        depth, rate = config.depth[stage], config.drop_path_rate[stage]
        rates = [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # linspace(0, rate, depth)
        self.blocks = nn.ModuleList(CvtBlock(config, stage, r) for r in rates)

    def forward(self, feature_map: torch.Tensor, output_attentions: bool = False):
        """Returns (patch tokens, class token or None, embedding output, (height, width), last block's attention)."""
        embedded, (height, width) = self.patch_embed(feature_map)
        tokens = embedded
        if self.cls_token is not None:
            # in the tokens' dtype: under autocast an fp32 token would turn the whole residual stream fp32
            cls = self.cls_token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([cls, tokens], dim=1)
        tokens = self.pos_drop(tokens)
        probs = None
        for block in self.blocks:
            tokens, probs = block(tokens, height, width, output_attentions)
        if self.cls_token is not None:
            return tokens[:, 1:], tokens[:, :1], embedded, (height, width), probs
        return tokens, None, embedded, (height, width), probs


class CvtPreTrainedModel(ZooPreTrainedModel):
    config: CvtConfig
    base_model_prefix = "cvt"
    _no_split_modules = ["CvtBlock", "CvtConvEmbedding"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation: truncated normal (std `initializer_range`) for Linear weights and the class
        token, zero biases, unit LayerNorm/BatchNorm (with fresh running statistics); convolutions keep PyTorch's
        default (transformers' generic init here)."""
        std = self.config.initializer_range
        if init_common_weights(module, std):
            return
        if isinstance(module, nn.Conv2d):
            super()._init_weights(module)
        elif isinstance(module, CvtStage) and module.cls_token is not None:
            init.trunc_normal_(module.cls_token, std=std)


class CvtModel(CvtPreTrainedModel):
    """The CvT encoder: patch tokens of the last stage, and the normalised class token (`pooler_output`)."""

    def __init__(self, config: CvtConfig, add_final_norm: bool = True):
        super().__init__(config)
        self.num_features = config.hidden_size
        self.stages = nn.ModuleList(CvtStage(config, i) for i in range(config.num_layers))
        # the backbone returns raw stage maps and has no use for the final norm (an unused parameter would also break
        # DistributedDataParallel without find_unused_parameters)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if add_final_norm else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.stages[0].patch_embed

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> CvtModelOutput:
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        height, width = pixel_values.shape[2:]
        if height < self.config.patch_size or width < self.config.patch_size:
            raise ValueError(f"Image of size {height}x{width} is smaller than one patch ({self.config.patch_size}x"
                             f"{self.config.patch_size}, the stride of the first convolutional token embedding)")
        x = pixel_values
        maps, attentions, cls = [], [], None
        for index, stage in enumerate(self.stages):
            tokens, cls, embedded, (height, width), probs = stage(x, output_attentions)
            if output_hidden_states:
                if index == 0:
                    maps.append((embedded, height, width))
                maps.append((tokens, height, width))
            if output_attentions:
                attentions.append(probs)
            x = tokens_to_map(tokens, height, width)
        pooled = None
        if self.layernorm is not None:
            pooled = self.layernorm(cls[:, 0]) if cls is not None else self.layernorm(tokens).mean(dim=1)
        hidden_states, reshaped = stage_hidden_states(
            [t.unflatten(1, (h, w)) for t, h, w in maps] if output_hidden_states else None)
        return CvtModelOutput(
            last_hidden_state=tokens, pooler_output=pooled, cls_token_value=cls, hidden_states=hidden_states,
            reshaped_hidden_states=reshaped, attentions=tuple(attentions) if output_attentions else None,
        )


class CvtForImageClassification(PooledLinearClassifierMixin, CvtPreTrainedModel):
    """CvT with the official head: Linear on the LayerNorm-ed class token (`pooler_output`)."""

    def __init__(self, config: CvtConfig):
        super().__init__(config)
        self.add_pooled_classifier(CvtModel(config), config.hidden_size)
        self.post_init()


class CvtBackbone(BackboneMixin, CvtPreTrainedModel):
    """NCHW feature maps of the selected stages (`config.out_features`): the stem (first token embedding) and each
    stage's output tokens as maps (the class token is left out)."""

    # a classification checkpoint's final norm and head are not part of the backbone
    _keys_to_ignore_on_load_unexpected = [r"^cvt\.layernorm\.", r"^classifier\."]

    def __init__(self, config: CvtConfig):
        super().__init__(config)
        self.num_features = [config.embed_dim[0]] + list(config.embed_dim)
        self.cvt = CvtModel(config, add_final_norm=False)
        self.post_init()

    @can_return_tuple
    @filter_output_hidden_states
    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> BackboneOutput:
        outputs = self.cvt(pixel_values, output_hidden_states=True, output_attentions=output_attentions,
                           return_dict=True)
        feature_maps = tuple(hidden for stage, hidden in zip(self.stage_names, outputs.reshaped_hidden_states)
                             if stage in self.out_features)
        return BackboneOutput(feature_maps=feature_maps, hidden_states=outputs.reshaped_hidden_states,
                              attentions=outputs.attentions)


__all__ = ["CvtPreTrainedModel", "CvtModel", "CvtForImageClassification", "CvtBackbone"]
