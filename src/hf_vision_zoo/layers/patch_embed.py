"""Non-overlapping patch embedding: a strided convolution, optionally followed by LayerNorm (ViT, Swin)."""

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import to_2tuple


class PatchEmbed(nn.Module):
    """Embed an NCHW image into a grid of patch tokens.

    Returns tokens `(B, H/p * W/p, C)` and the grid size `(H/p, W/p)`. With `pad_to_patch=True`, an image whose sides
    are not multiples of the patch size is zero-padded on the bottom/right first (what transformers' Swin does);
    otherwise such an image is rejected with a clear error.
    """

    def __init__(self, patch_size: int | tuple[int, int], num_channels: int, embed_dim: int,
                 use_norm: bool = True, layer_norm_eps: float = 1e-5, pad_to_patch: bool = True):
        super().__init__()
        self.patch_size = to_2tuple(patch_size)
        self.num_channels = num_channels
        self.pad_to_patch = pad_to_patch
        self.proj = nn.Conv2d(num_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps) if use_norm else None

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        _, _, height, width = pixel_values.shape
        ph, pw = self.patch_size
        if height < ph or width < pw:
            raise ValueError(f"Image of size {height}x{width} is smaller than one patch ({ph}x{pw}).")
        if height % ph or width % pw:
            if not self.pad_to_patch:
                raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {ph}x{pw}.")
            pixel_values = F.pad(pixel_values, (0, (pw - width % pw) % pw, 0, (ph - height % ph) % ph))
        x = self.proj(pixel_values)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, grid
