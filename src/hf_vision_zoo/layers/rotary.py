"""Rotary position embedding over a raster-ordered token grid, RetNet/RMT style (as used by PPMA, paper 9).

Every token of an `H x W` map gets the angle `index * theta_k` with `index = row * W + col` (its raster position)
and per-pair frequencies `theta_k = 10000 ** -(k / (d/2 - 1))`, `k = 0 .. d/2 - 1` (RMT's `linspace(0, 1)`
spacing, not RoFormer's `2k / d`). Channels are rotated in adjacent pairs `(x0, x1) -> (-x1, x0)`.
"""

import torch


def rotary_frequencies(dim: int, base: float = 10000.0) -> torch.Tensor:
    """`(dim,)` frequencies, each repeated for the two channels of its pair; `dim` must be even."""
    if dim % 2 or dim < 2:
        raise ValueError(f"rotary embeddings rotate channel pairs: the head dim must be even and >= 2, got {dim}")
    theta = 1.0 / (base ** torch.linspace(0, 1, dim // 2))
    return theta.repeat_interleave(2)


def grid_rotary_sin_cos(frequencies: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(sin, cos)`, each `(height, width, dim)`, for the raster positions of an `height x width` grid."""
    index = torch.arange(height * width, device=frequencies.device, dtype=frequencies.dtype)
    angles = index[:, None] * frequencies[None, :]
    return angles.sin().view(height, width, -1), angles.cos().view(height, width, -1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """`(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)` along the last dim."""
    return torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate `x` (`(..., H, W, dim)`) by the grid angles."""
    return x * cos + rotate_pairs(x) * sin


__all__ = ["rotary_frequencies", "grid_rotary_sin_cos", "rotate_pairs", "apply_rotary"]
