"""Attention dispatch shared by the zoo's transformers: eager softmax attention or any backend registered with
transformers' `ALL_ATTENTION_FUNCTIONS` (SDPA by default), chosen by `config._attn_implementation`."""

from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention on `(B, heads, N, d)` tensors with an additive mask; returns `(B, N, heads, d)` and the
    attention probabilities (the same contract as transformers' backends)."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scaling, key.transpose(-2, -1))
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2), probs


def get_attention_function(config, output_attentions: bool = False) -> Callable:
    """The configured attention backend; eager whenever attention probabilities are requested, since fused kernels
    never materialise them."""
    if output_attentions:
        return eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)
