"""Absolute position embeddings of plain ViTs: the fixed 2-D sin-cos table of MAE (He et al., CVPR 2022; official
`util/pos_embed.py` layout) and bicubic resampling of a learned table to another patch grid (as timm's
`resample_abs_pos_embed` and transformers' `interpolate_pos_encoding` do)."""

import torch
import torch.nn.functional as F


def sincos_2d_position_embedding(grid_size: tuple[int, int], dim: int, num_prefix_tokens: int = 0,
                                 temperature: float = 10000.0) -> torch.Tensor:
    """`(1, P + h*w, dim)` fixed embedding: per patch `[sin(x w), cos(x w), sin(y w), cos(y w)]` with `dim/4`
    frequencies `w = temperature^(-k / (dim/4))` (x = column, y = row, patches row-major), and zero rows for the `P`
    prefix tokens. Computed in float64 like the official numpy code, returned as float32."""
    if dim % 4:
        raise ValueError(f"the 2-D sin-cos position embedding needs a width divisible by 4, got {dim}")
    height, width = grid_size
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
    x = cols.flatten()[:, None] * omega[None]
    y = rows.flatten()[:, None] * omega[None]
    table = torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)
    if num_prefix_tokens:
        table = torch.cat([torch.zeros(num_prefix_tokens, dim, dtype=torch.float64), table])
    return table.float().unsqueeze(0)


def resample_position_embeddings(position_embeddings: torch.Tensor, old_grid: tuple[int, int],
                                 new_grid: tuple[int, int], num_prefix_tokens: int = 0,
                                 antialias: bool = False) -> torch.Tensor:
    """Bicubically resize the patch part of a `(1, P + h*w, C)` table to `new_grid`; prefix rows are kept as they are.
    `antialias=True` is timm's default (it only changes the result when shrinking)."""
    if tuple(old_grid) == tuple(new_grid):
        return position_embeddings
    prefix, patches = position_embeddings[:, :num_prefix_tokens], position_embeddings[:, num_prefix_tokens:]
    if patches.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position table has {patches.shape[1]} patch rows, not {old_grid[0]}x{old_grid[1]}")
    channels = patches.shape[-1]
    dtype = patches.dtype
    grid = patches.float().reshape(1, old_grid[0], old_grid[1], channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=antialias)
    patches = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], channels).to(dtype)
    return torch.cat([prefix, patches], dim=1) if num_prefix_tokens else patches


__all__ = ["sincos_2d_position_embedding", "resample_position_embeddings"]
