"""Learned relative position bias inside a window (Swin §3.2, "Relative position bias")."""

import torch


def relative_position_index(window_size: tuple[int, int]) -> torch.Tensor:
    """`(N, N)` long tensor indexing a `(2wh-1)(2ww-1)` bias table for every query/key pair of a window."""
    wh, ww = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (N, N, 2)
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    return rel[:, :, 0] * (2 * ww - 1) + rel[:, :, 1]


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather the `(num_heads, N, N)` bias from a `((2wh-1)(2ww-1), num_heads)` table."""
    n = index.shape[0]
    return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
