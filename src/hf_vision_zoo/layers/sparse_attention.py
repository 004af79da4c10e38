"""Real top-k sparse attention: every query attends to its own `k` keys only.

Used by Sparsifiner (Wei et al., CVPR 2023, https://arxiv.org/abs/2303.13755), whose official code only emulates
sparsity with a dense `-inf` mask. Here the score and value products cost `O(Q * k * d)` instead of `O(Q * N * d)`;
the result equals dense attention with every unselected key masked out (up to float summation order). Two kernels:
- "csr" (`csr_topk_attention`, the default on CPU for fp32/fp64): a sampled dense-dense CSR product for the scores
  and a sparse-dense product (weighted row sums) for the output, without materialising any gathered copy;
- "gather" (`gather_rows`): the `k` keys/values of every query are copied into `(B, H, Q, k, d)` tensors and each
  query is a one-query attention problem (any dtype or device, attention dropout, any attention backend).
"""

import contextlib
import warnings

import torch
import torch.nn.functional as F

KERNELS = ("auto", "csr", "gather")
_DEFAULT_KERNEL = ["auto"]
_CSR_DTYPES = (torch.float32, torch.float64)  # what CPU `torch.sparse.sampled_addmm` supports (not bf16/fp16)


@contextlib.contextmanager
def use_kernel(kernel: str):
    """Within the block, `topk_sparse_attention` and `row_sparse_matmul` default to `kernel` ("auto", "csr" or
    "gather"). Used to count FLOPs: `FlopCounterMode` sizes a CSR product as if it were dense (and does not see
    `sampled_addmm`), while the gather kernel does the same arithmetic in ops it counts correctly."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    previous = _DEFAULT_KERNEL[0]
    _DEFAULT_KERNEL[0] = kernel
    try:
        yield
    finally:
        _DEFAULT_KERNEL[0] = previous


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


def _index_dtype(*counts: int) -> torch.dtype:
    return torch.int32 if max(counts) < 2**31 - 1 else torch.int64


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" (once per process), kept local
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def _sampled(crow, col, rows: torch.Tensor, dense: torch.Tensor, scaling: float, size) -> torch.Tensor:
    """The `nnz` values `scaling * <rows[r], dense[c]>` at the pattern's entries `(r, c)`, in the pattern's order."""
    # zeros, not empty: beta=0 still multiplies the pattern's values and 0 * NaN from uninitialised memory is NaN
    pattern = _csr(crow, col, rows.new_zeros(col.numel()), size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.sampled_addmm(pattern, rows, dense.t(), beta=0.0, alpha=scaling).values()


class _RowSparseMatmul(torch.autograd.Function):
    """`out[r] = sum_j values[r, j] * dense[columns[r, j]]` (a CSR matrix with the pattern `crow`/`col` times
    `dense`). Forward: `embedding_bag`'s weighted row sums (FBGEMM; ~3x faster than PyTorch's CPU CSR sparse-dense
    product). Backward: CSR kernels; PyTorch's own backward for CSR values assumes sorted columns within a row
    (wrong gradients for top-k order), `embedding_bag`'s sorts the indices (2x slower), and the values' gradient is
    itself a sampled product."""

    @staticmethod
    def forward(ctx, values, columns, dense, crow, col):
        ctx.save_for_backward(values, dense, crow, col)
        return F.embedding_bag(columns, dense, per_sample_weights=values, mode="sum")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        values, dense, crow, col = ctx.saved_tensors
        size = (values.shape[0], dense.shape[0])
        grad_values = grad_dense = None
        if ctx.needs_input_grad[0]:
            grad_values = _sampled(crow, col, grad.contiguous(), dense, 1.0, size).view_as(values)
        if ctx.needs_input_grad[2]:
            grad_dense = _csr(crow, col, values.reshape(-1), size).t() @ grad
        return grad_values, None, grad_dense, None, None


def csr_applies(*tensors: torch.Tensor, dropout: float = 0.0) -> bool:
    """Whether the CSR kernels can run these (floating) tensors: all on CPU, one dtype among fp32/fp64 (what CPU
    `torch.sparse.sampled_addmm` supports), and no attention dropout."""
    first = tensors[0]
    return (not dropout and first.device.type == "cpu" and first.dtype in _CSR_DTYPES
            and all(t.dtype == first.dtype and t.device == first.device for t in tensors))


class _FixedRowPattern:
    """A CSR pattern with exactly `k` entries per row: row `r` holds the columns `columns[r]` (any order)."""

    def __init__(self, columns: torch.Tensor, num_columns: int):
        rows, keep = columns.shape
        dtype = _index_dtype(rows * keep + 1, num_columns)
        self.keep, self.size = keep, (rows, num_columns)
        self.columns = columns.to(dtype)
        self.col = self.columns.reshape(-1)
        self.crow = torch.arange(0, rows * keep + 1, keep, dtype=dtype, device=columns.device)

    def sampled_dot(self, rows: torch.Tensor, dense: torch.Tensor, scaling: float = 1.0) -> torch.Tensor:
        """`(R, k)`: `scaling * <rows[r], dense[columns[r, j]]>`."""
        return _sampled(self.crow, self.col, rows, dense, scaling, self.size).view(-1, self.keep)

    def matmul(self, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """`(R, d)`: `sum_j values[r, j] * dense[columns[r, j]]`."""
        values = values.reshape(-1, self.keep)
        if torch.is_grad_enabled() and (values.requires_grad or dense.requires_grad):
            return _RowSparseMatmul.apply(values, self.columns, dense, self.crow, self.col)
        return F.embedding_bag(self.columns, dense, per_sample_weights=values, mode="sum")


def row_sparse_matmul(values: torch.Tensor, columns: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """`values (..., k)` weights of the rows `columns (..., k)` of `dense (C, d)` -> `(..., d)`, i.e.
    `(values.unsqueeze(-2) @ dense[columns]).squeeze(-2)` without materialising `dense[columns]`: weighted row sums
    (`embedding_bag`; with gradients through `_RowSparseMatmul` on CPU fp32/fp64). Under `use_kernel("gather")`
    the gathered product. Differentiable in values and dense."""
    if _DEFAULT_KERNEL[0] == "gather":
        return (values.unsqueeze(-2) @ dense[columns]).squeeze(-2)
    keep = values.shape[-1]
    flat_values, flat_columns = values.reshape(-1, keep), columns.reshape(-1, keep)
    dense = dense.contiguous()  # embedding_bag's fast kernels need a contiguous table
    if csr_applies(values, dense):
        out = _FixedRowPattern(flat_columns, dense.shape[0]).matmul(flat_values, dense)
    else:  # any dtype/device, embedding_bag's own backward
        out = F.embedding_bag(flat_columns, dense, per_sample_weights=flat_values, mode="sum")
    return out.view(*values.shape[:-1], dense.shape[-1])


def topk_indices(x: torch.Tensor, k: int) -> torch.Tensor:
    """`torch.topk(x, k, dim=-1, sorted=False).indices`, identical (ties included), faster on CPU for fp32.
    PyTorch's CPU top-k runs `std::nth_element` over (value, index) pairs whose floats it widens to double; here it
    runs over int32 keys ordered like the floats (a non-negative float's bits; a negative one's bits with the
    magnitude bits flipped; -0.0 first made +0.0, which equals it), so every comparison, hence the selection and
    its tie-breaking, is the same. NaN (ordered specially by `torch.topk`), other dtypes and devices use
    `torch.topk` itself."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0:
        return x.topk(k, dim=-1, sorted=False).indices
    x = x.detach()
    low = x.min()
    if low >= 0:  # the common case (Sparsifiner's approximations): the bits are already ordered like the floats
        keys = (x + 0.0).view(torch.int32)
    elif not torch.isnan(low):  # (min is NaN if any element is)
        bits = (x + 0.0).view(torch.int32)
        keys = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    else:
        return x.topk(k, dim=-1, sorted=False).indices
    return keys.topk(k, dim=-1, sorted=False).indices


def csr_topk_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor,
                       scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k softmax attention through sparse CSR kernels: `query (B, H, Q, d)`, `key`/`value (B, H, N, d)`,
    `indices (B, H, Q, k)` -> output `(B, H, Q, d)` and the probabilities over the selected keys `(B, H, Q, k)`
    (in the order of `indices`). Differentiable in query, key and value.

    The `G = B * H` independent problems are folded into one block-diagonal `(G * Q, G * N)` sparse matrix: row
    `g * Q + q` holds the `k` entries `g * N + indices[g, q]`, so one CSR pattern with row pointers
    `0, k, 2k, ...` (no sorting: CSR kernels accept any column order within a row) describes every head and
    image, and the scores are a single sampled product `(Q2d K2d^T)` evaluated only at those `G * Q * k` entries.
    Every row has exactly `k` entries, so the softmax is a dense one over a `(G * Q, k)` view of the values, and the
    output is the sparse-dense product `P V2d` with the same pattern, run as `embedding_bag` weighted row sums
    (`_RowSparseMatmul`: 3x faster than PyTorch's CSR product on CPU). Unlike gathering, nothing of size
    `Q * k * d` is written to or read back from memory: each score and each output row reads the selected key or
    value rows in place, which is what makes this cheaper than dense attention on CPU at the paper's keep rates
    (the gathered copies were 8x slower than dense). Int32 indices when they fit (faster CSR kernels)."""
    batch, heads, queries, dim = query.shape
    tokens = key.shape[-2]
    keep = indices.shape[-1]
    groups = batch * heads
    dtype = _index_dtype(groups * queries * keep + 1, groups * tokens)
    offsets = torch.arange(0, groups * tokens, tokens, dtype=dtype, device=query.device).view(groups, 1)
    columns = indices.reshape(groups, queries * keep).to(dtype) + offsets
    pattern = _FixedRowPattern(columns.view(groups * queries, keep), groups * tokens)
    probs = pattern.sampled_dot(query.reshape(-1, dim), key.reshape(-1, dim), scaling).softmax(dim=-1)
    out = pattern.matmul(probs, value.reshape(-1, dim))
    return out.view(batch, heads, queries, dim), probs.view(batch, heads, queries, keep)


def topk_sparse_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, indices: torch.Tensor,
                          scaling: float, attention=None, module=None, dropout: float = 0.0,
                          kernel: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax attention of `query (B, H, Q, d)` over only the keys `indices (B, H, Q, k)` of `key`/`value`
    `(B, H, N, d)`. Returns the output `(B, H, Q, d)` and the probabilities over the selected keys `(B, H, Q, k)`
    (None if the backend does not materialise them).

    `kernel` (default "auto", or the one set by `use_kernel`): "auto" runs `csr_topk_attention` whenever
    `csr_applies` (it always returns the probabilities, whatever `attention` is), else the gather kernel: every
    query becomes its own one-query problem over its `k` gathered keys, run by `attention` (a transformers-style
    attention function, e.g. `get_attention_function(config)`; eager softmax attention if None) with `dropout`.
    "csr" / "gather" force a kernel ("csr" raises if it cannot run the inputs)."""
    if indices.shape[:-1] != query.shape[:-1]:
        raise ValueError(f"indices {tuple(indices.shape)} must be (batch, heads, queries, k) for query "
                         f"{tuple(query.shape)}")
    kernel = _DEFAULT_KERNEL[0] if kernel is None else kernel
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel != "gather" and csr_applies(query, key, value, dropout=dropout):
        return csr_topk_attention(query, key, value, indices, scaling)
    if kernel == "csr":
        raise ValueError(f"the csr kernel needs CPU fp32/fp64 inputs of one dtype and no dropout, got "
                         f"{query.dtype}/{key.dtype}/{value.dtype} on {query.device}, dropout {dropout}")
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


__all__ = ["use_kernel", "gather_rows", "csr_applies", "row_sparse_matmul", "topk_indices", "csr_topk_attention",
           "topk_sparse_attention", "scatter_probabilities"]
