"""The plain pre-norm transformer block of ViT (Dosovitskiy et al., 2021) and the many papers built on it.

`SelfAttention` uses one fused `qkv` projection and `proj` (timm's layout, which the official ViT/DeiT/MAE/CrossViT
checkpoints share); `TransformerBlock` is `x + DropPath(LS(attn(LN(x))))` then `x + DropPath(LS(mlp(LN(x))))`.
The attention backend comes from `config._attn_implementation` (see `layers.attention`).
"""

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import get_attention_function
from .drop_path import DropPath
from .mlp import Mlp


class SelfAttention(nn.Module):
    """Multi-head self-attention on `(B, N, dim)` tokens with a fused `qkv` projection.

    `attention_mask` is an optional additive mask broadcastable to `(B, heads, N, N)`. Returns the output and the
    attention probabilities (`None` unless `output_attentions`).
    """

    def __init__(self, config, dim: int, num_heads: int, qkv_bias: bool = True, attention_dropout: float = 0.0,
                 proj_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.attention_dropout = attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_dropout) if proj_dropout > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, dim = hidden_states.shape
        # unbind the (B, N, 3, heads, d) view along its "3" axis, then transpose each to (B, heads, N, d): the same
        # strided q/k/v as a (3, B, heads, N, d) permute, but the backward stacks the three gradients straight into
        # the qkv layout (no extra copy to re-order them)
        query, key, value = (t.transpose(1, 2) for t in
                             self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim).unbind(2))
        attention = get_attention_function(self.config, output_attentions)
        out, probs = attention(self, query, key, value, attention_mask, scaling=self.scaling,
                               dropout=self.attention_dropout if self.training else 0.0)
        out = self.proj_drop(self.proj(out.reshape(batch, tokens, dim)))
        return out, (probs if output_attentions else None)


class LayerScale(nn.Module):
    """Per-channel learnable scaling of a residual branch (CaiT, Touvron et al., 2021); parameter name `gamma`."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x):
        return x * self.gamma


class TransformerBlock(GradientCheckpointingLayer):
    """Pre-norm ViT block: `norm1, attn, ls1, drop_path1, norm2, mlp, ls2, drop_path2`."""

    def __init__(self, config, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_norm_eps: float = 1e-6, layer_scale_init_value: float | None = None,
                 hidden_act: str = "gelu", attention_dropout: float = 0.0, dropout: float = 0.0,
                 attention: nn.Module | None = None):
        """`attention`: another token mixer with `SelfAttention`'s call signature (default: a `SelfAttention`)."""
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = attention if attention is not None else SelfAttention(
            config, dim, num_heads, qkv_bias=qkv_bias, attention_dropout=attention_dropout, proj_dropout=dropout)
        self.ls1 = LayerScale(dim, layer_scale_init_value) if layer_scale_init_value else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), hidden_act=hidden_act, dropout=dropout)
        self.ls2 = LayerScale(dim, layer_scale_init_value) if layer_scale_init_value else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.attn(self.norm1(hidden_states), attention_mask, output_attentions)
        hidden_states = hidden_states + self.drop_path1(self.ls1(attended))
        hidden_states = hidden_states + self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return hidden_states, probs
