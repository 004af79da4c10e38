"""Mamba2-style structured (decay) masks in log space, in 1-D and along 2-D polyline paths (PPMA, paper 9:
"Polyline Path Masked Attention for Vision Transformer", Zhao et al., NeurIPS 2025, arXiv 2506.15940).

A 1-D structured mask of per-token decays `a_k = exp(x_k)` (`x_k <= 0`) is
`L[i, j] = prod_{k in (min(i,j), max(i,j)]} a_k`, the decay accumulated between the two tokens (Mamba2's causal
segment product, made symmetric). In log space it is a segment sum; `segment_sum` computes all of them from one
cumulative sum (O(L^2) instead of O(L^3)).

The 2-D polyline path mask of a query `(hi, wi)` and a key `(hj, wj)` multiplies the decays along the polyline that
first runs horizontally along the query's row to the key's column (horizontal decays `alpha`), then vertically along
that column to the key (vertical decays `beta`):
    log M[(hi, wi), (hj, wj)] = S_alpha[row hi](wi, wj) + S_beta[column wj](hi, hj).
`polyline_path_mask` builds the full `(HW, HW)` mask from the 1-D segment sums of every row and column with one
broadcast add: O(HW (H + W)) work for the segment sums plus the unavoidable O((HW)^2) output, instead of walking
every path (O((HW)^2 (H + W))). `vertical_first=True` gives the other polyline (vertical along the query's column,
then horizontal along the key's row), which is the transpose of the first. `naive_polyline_path_mask` walks each
path token by token, straight from the definition; it exists for the tests.
"""

import torch


def segment_sum(x: torch.Tensor) -> torch.Tensor:
    """`(..., L) -> (..., L, L)`: entry `[i, j]` is `sum(x[min(i, j) + 1 : max(i, j) + 1])` (0 on the diagonal)."""
    cumsum = x.cumsum(dim=-1)
    lower = cumsum[..., :, None] - cumsum[..., None, :]  # i >= j: x[j+1..i]
    upper = cumsum[..., None, :] - cumsum[..., :, None]  # i < j:  x[i+1..j]
    length = x.shape[-1]
    below = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
    return torch.where(below, lower, upper)


def polyline_path_mask(alpha: torch.Tensor, beta: torch.Tensor, vertical_first: bool = False) -> torch.Tensor:
    """Log polyline path mask `(..., H*W, H*W)` from horizontal and vertical log-decays `alpha`, `beta` of shape
    `(..., H, W)`; queries index the rows, keys the columns, both in raster order."""
    if alpha.shape != beta.shape or alpha.ndim < 2:
        raise ValueError(f"alpha and beta must both be (..., H, W), got {tuple(alpha.shape)} and {tuple(beta.shape)}")
    *lead, height, width = alpha.shape
    rows = segment_sum(alpha)  # (..., H, W, W): [row, wi, wj]
    cols = segment_sum(beta.transpose(-1, -2))  # (..., W, H, H): [col, hi, hj]
    n = len(lead)
    if not vertical_first:
        # rows[hi, wi, wj] + cols[wj, hi, hj] -> [hi, wi, hj, wj]
        row_part = rows.unsqueeze(-2)  # (..., hi, wi, 1, wj)
        col_part = cols.permute(*range(n), n + 1, n + 2, n).unsqueeze(-3)  # (..., hi, 1, hj, wj)
    else:
        # cols[wi, hi, hj] + rows[hj, wi, wj] -> [hi, wi, hj, wj]
        col_part = cols.permute(*range(n), n + 1, n, n + 2).unsqueeze(-1)  # (..., hi, wi, hj, 1)
        row_part = rows.permute(*range(n), n + 1, n, n + 2).unsqueeze(-4)  # (..., 1, wi, hj, wj)
    return (row_part + col_part).reshape(*lead, height * width, height * width)


def naive_polyline_path_mask(alpha: torch.Tensor, beta: torch.Tensor, vertical_first: bool = False,
                             log: bool = True) -> torch.Tensor:
    """The same mask by walking every polyline token by token and multiplying the decays `exp(alpha)`, `exp(beta)`
    of the tokens it enters (the start token excluded, the end token included). Slow; for tests only.
    With `log=True` the log of the product is returned, comparable to `polyline_path_mask`."""
    *lead, height, width = alpha.shape
    a, b = alpha.exp(), beta.exp()
    out = torch.ones(*lead, height * width, height * width, dtype=alpha.dtype)

    def walk(start: int, end: int) -> range:  # tokens entered going from start to end, in either direction
        return range(min(start, end) + 1, max(start, end) + 1)

    for hi in range(height):
        for wi in range(width):
            for hj in range(height):
                for wj in range(width):
                    product = torch.ones(lead, dtype=alpha.dtype)
                    if not vertical_first:  # along row hi from column wi to wj, then down/up column wj to row hj
                        for w in walk(wi, wj):
                            product = product * a[..., hi, w]
                        for h in walk(hi, hj):
                            product = product * b[..., h, wj]
                    else:  # along column wi from row hi to hj, then along row hj from column wi to wj
                        for h in walk(hi, hj):
                            product = product * b[..., h, wi]
                        for w in walk(wi, wj):
                            product = product * a[..., hj, w]
                    out[..., hi * width + wi, hj * width + wj] = product
    return out.log() if log else out


__all__ = ["segment_sum", "polyline_path_mask", "naive_polyline_path_mask"]
