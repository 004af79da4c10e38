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


# Up to this many keys, reduced-precision attention on CPU is faster as two batched matmuls than as SDPA's kernel.
SHORT_KEYS = 256


def get_cpu_tuned_attention_function(config, query: torch.Tensor, key: torch.Tensor,
                                     attention_mask: torch.Tensor | None = None,
                                     output_attentions: bool = False) -> Callable:
    """`get_attention_function`, except where PyTorch's SDPA is measurably slower than the same math done eagerly
    on CPU (benchmarks/speed_board.py): a single query (CrossViT's class-token cross-attention); bf16/fp16 with at
    most `SHORT_KEYS` keys (Swin windows, CvT's squeezed k/v: the fused kernel is slower, ~3x in backward); an
    additive mask that needs gradients (Swin's learned bias: SDPA falls back to its math path and upcasts)."""
    attention = get_attention_function(config, output_attentions)
    if query.device.type != "cpu" or config._attn_implementation != "sdpa":
        return attention
    if (query.shape[-2] == 1
            or (query.dtype in (torch.bfloat16, torch.float16) and key.shape[-2] <= SHORT_KEYS)
            or (attention_mask is not None and attention_mask.requires_grad)):
        return eager_attention_forward
    return attention
