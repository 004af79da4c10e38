"""Real (gathered) top-k sparse attention: every query attends to its own `k` keys only.

Used by Sparsifiner (Wei et al., CVPR 2023, https://arxiv.org/abs/2303.13755), whose official code only emulates
sparsity with a dense `-inf` mask. Here the `k` selected keys/values of each query are gathered, so the score and
value products cost `O(Q * k * d)` instead of `O(Q * N * d)`; the result equals dense attention with every
unselected key masked out (up to float summation order).
"""

import torch


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """`x (..., N, d)` and `indices (..., Q, k)` (same leading dims) -> `(..., Q, k, d)` with
    `out[..., q, j] = x[..., indices[..., q, j]]`."""
    *lead, tokens, dim = x.shape
    flat = x.reshape(-1, tokens, dim)
    groups = flat.shape[0]
    queries, keep = indices.shape[-2:]
    offsets = torch.arange(groups, device=x.device).view(groups, 1, 1) * tokens
    flat_indices = (indices.reshape(groups, queries, keep) + offsets).reshape(-1)
    return flat.reshape(groups * tokens, dim).index_select(0, flat_indices).view(*lead, queries, keep, dim)


def topk_sparse_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor,
                          scaling: float, attention=None, module=None,
                          dropout: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax attention of `query (B, H, Q, d)` over only the keys `indices (B, H, Q, k)` of `key`/`value`
    `(B, H, N, d)`. Every query becomes its own one-query problem over its `k` gathered keys, run by `attention` (a
    transformers-style attention function, e.g. `get_attention_function(config)`; eager softmax attention if None).
    Returns the output `(B, H, Q, d)` and the probabilities over the selected keys `(B, H, Q, k)` (None if the
    backend does not materialise them)."""
    if indices.shape[:-1] != query.shape[:-1]:
        raise ValueError(f"indices {tuple(indices.shape)} must be (batch, heads, queries, k) for query "
                         f"{tuple(query.shape)}")
    batch, heads, queries, dim = query.shape
    keep = indices.shape[-1]
    problems = batch * heads * queries
    selected_keys = gather_rows(key, indices).reshape(problems, 1, keep, dim)
    selected_values = gather_rows(value, indices).reshape(problems, 1, keep, dim)
    query = query.reshape(problems, 1, 1, dim)
    if attention is None:  # plain softmax attention without a module (no dropout)
        probs = (query @ selected_keys.transpose(-2, -1) * scaling).softmax(dim=-1)
        out = probs @ selected_values
    else:
        out, probs = attention(module, query, selected_keys, selected_values, None, scaling=scaling,
                               dropout=dropout)
    out = out.reshape(batch, heads, queries, dim)
    return out, (probs.reshape(batch, heads, queries, keep) if probs is not None else None)


def scatter_probabilities(probs: torch.Tensor, indices: torch.Tensor, num_keys: int) -> torch.Tensor:
    """The dense `(..., Q, N)` attention map of sparse probabilities `(..., Q, k)` over keys `indices`."""
    dense = probs.new_zeros(*probs.shape[:-1], num_keys)
    return dense.scatter(-1, indices, probs)


__all__ = ["gather_rows", "topk_sparse_attention", "scatter_probabilities"]
