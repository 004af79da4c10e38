"""Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic Depth"), per sample on the residual branch."""

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability `drop_prob`, rescaling survivors by 1/(1-p)."""
    if not 0.0 <= drop_prob < 1.0:  # p = 1 would rescale by 1/0 and turn every sample into NaN
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = x.new_empty(shape).bernoulli_(keep_prob)
    return x * keep.div_(keep_prob)


class DropPath(nn.Module):
    """Module form of `drop_path`; identity in eval mode or when `drop_prob == 0`."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"
