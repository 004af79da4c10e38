"""Window partitioning and the shifted-window attention mask of Swin Transformer (Liu et al., ICCV 2021, §3.2).

Tensors are channels-last: feature maps are `(B, H, W, C)`, windows are `(B * num_windows, wh * ww, C)`.
"""

import functools

import torch
import torch.nn.functional as F

from .helpers import to_2tuple


def window_partition(x: torch.Tensor, window_size: tuple[int, int]) -> torch.Tensor:
    """`(B, H, W, C)` -> `(B * H/wh * W/ww, wh * ww, C)`; H and W must be multiples of the window."""
    b, h, w, c = x.shape
    wh, ww = window_size
    x = x.view(b, h // wh, wh, w // ww, ww, c).transpose(2, 3)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, window_size: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Inverse of `window_partition`: `(B * nW, wh * ww, C)` -> `(B, H, W, C)`."""
    wh, ww = window_size
    c = windows.shape[-1]
    x = windows.view(-1, height // wh, width // ww, wh, ww, c).transpose(2, 3)
    return x.reshape(-1, height, width, c)


def pad_to_window(x: torch.Tensor, window_size: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
    """Zero-pad a `(B, H, W, C)` map on the bottom/right to multiples of the window; returns the padded sizes."""
    _, h, w, _ = x.shape
    pad_h = (window_size[0] - h % window_size[0]) % window_size[0]
    pad_w = (window_size[1] - w % window_size[1]) % window_size[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, h + pad_h, w + pad_w


def shifted_window_mask(height: int, width: int, window_size, shift_size, mask_value: float = -100.0,
                        device=None, dtype=torch.float32) -> torch.Tensor:
    """Additive mask `(num_windows, N, N)` that stops tokens of a cyclically shifted window attending across the
    seams of the roll (Swin §3.2, "efficient batch computation for shifted configuration").

    `height`/`width` are the (padded) feature-map size; `mask_value` is -100 as in the official code.
    """
    wh, ww = to_2tuple(window_size)
    sh, sw = to_2tuple(shift_size)
    region = torch.zeros((1, height, width, 1), device=device, dtype=dtype)
    label = 0
    for hs in ((0, height - wh), (height - wh, height - sh), (height - sh, height)):
        for ws in ((0, width - ww), (width - ww, width - sw), (width - sw, width)):
            region[:, hs[0]:hs[1], ws[0]:ws[1], :] = label
            label += 1
    windows = window_partition(region, (wh, ww)).squeeze(-1)  # (nW, N)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill_(diff != 0, mask_value)


@functools.lru_cache(maxsize=32)
def window_partition_index(height: int, width: int, window_size, shift_size=0,
                           device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token permutations that turn the cyclic shift + `window_partition` of a Swin block into one gather, and its
    inverse (`window_reverse` + the shift back) into another.

    Returns `(index, inverse)`, `(H * W,)` long tensors over the flattened map: for `x` of shape `(B, H, W, C)`,
    `x.flatten(1, 2)[:, index]` equals `window_partition(torch.roll(x, (-sh, -sw), (1, 2)), window_size)` (as
    `(B, nW * N, C)`), and `windows[:, inverse]` undoes it. Cached: the result only depends on the arguments.
    """
    wh, ww = to_2tuple(window_size)
    sh, sw = to_2tuple(shift_size)
    with torch.inference_mode(False):  # cached tensors must stay usable outside inference mode (e.g. in training)
        positions = torch.arange(height * width, device=device).view(1, height, width, 1)
        if sh or sw:
            positions = torch.roll(positions, shifts=(-sh, -sw), dims=(1, 2))
        index = window_partition(positions, (wh, ww)).flatten()
        return index, torch.argsort(index)
