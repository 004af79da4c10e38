"""Token masking for masked image modeling: MAE's random masking from noise (He et al., CVPR 2022,
https://arxiv.org/abs/2111.06377, §3 "Masking"), explicit boolean masks, and the gather / restore steps that let an
encoder see only the visible tokens and a decoder put mask tokens back in place.

Conventions (those of MAE and transformers' ViTMAE): `mask` is `(B, N)` with 1/True = removed (masked) and 0 = kept;
`ids_keep` `(B, V)` gives the patch index of each kept token in encoding order; `ids_restore` `(B, N)` is the inverse
permutation, so that `cat([kept, masked])[ids_restore]` is back in patch order.
"""

from typing import NamedTuple

import torch


class MaskingIndices(NamedTuple):
    """What a masked encoder needs: which tokens it keeps, how to undo the order, and the `(B, N)` float mask."""

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def check_mask_ratio(mask_ratio: float) -> float:
    """Reject ratios outside [0, 1) (a ratio of 1 would leave nothing to encode)."""
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
    return float(mask_ratio)


def num_visible_tokens(num_tokens: int, mask_ratio: float) -> int:
    """Tokens kept by MAE's rounding, `int(N * (1 - ratio))`, at least one."""
    return max(1, int(num_tokens * (1 - check_mask_ratio(mask_ratio))))


def _check_per_token(name: str, tensor: torch.Tensor, batch: int | None, num_tokens: int | None) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    expected = f"({batch if batch is not None else 'batch'}, {num_tokens if num_tokens is not None else 'num_patches'})"
    if tensor.ndim != 2 or (batch is not None and tensor.shape[0] != batch) or (
            num_tokens is not None and tensor.shape[1] != num_tokens):
        raise ValueError(f"{name} must have shape {expected} (one value per patch), got {tuple(tensor.shape)}")


def random_masking(noise: torch.Tensor, mask_ratio: float, batch: int | None = None,
                   num_tokens: int | None = None) -> MaskingIndices:
    """MAE's per-sample random masking: keep the `int(N * (1 - ratio))` tokens with the smallest noise.

    `batch` / `num_tokens`, when given, are checked against `noise`'s shape.
    """
    _check_per_token("noise", noise, batch, num_tokens)
    if not noise.is_floating_point():
        raise TypeError(f"noise must be a float tensor, got {noise.dtype}")
    size, length = noise.shape
    keep = num_visible_tokens(length, mask_ratio)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(size, length, device=noise.device)
    mask[:, :keep] = 0
    return MaskingIndices(ids_shuffle[:, :keep], ids_restore, torch.gather(mask, 1, ids_restore))


def masking_from_mask(mask: torch.Tensor, batch: int | None = None, num_tokens: int | None = None) -> MaskingIndices:
    """Indices for an explicit boolean mask (True = removed). Kept tokens stay in patch order. Every row must mask the
    same number of tokens (the kept tokens of a batch are encoded as one tensor)."""
    _check_per_token("mask", mask, batch, num_tokens)
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.dtype in (torch.int64, torch.int32, torch.uint8, torch.int8):
            if not ((mask == 0) | (mask == 1)).all():
                raise ValueError("mask must be boolean (or 0/1 valued): True/1 = masked, False/0 = visible")
            mask = mask.bool()
        else:
            raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    counts = mask.sum(dim=1)
    if (counts != counts[0]).any():
        raise ValueError(
            f"every image must mask the same number of patches, got {sorted(set(counts.tolist()))} masked per row"
        )
    if int(counts[0]) == mask.shape[1]:
        raise ValueError("mask removes every patch; at least one patch must stay visible")
    # stable sort: visible tokens (False) first in patch order, then the masked ones in patch order
    ids_shuffle = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    keep = mask.shape[1] - int(counts[0])
    return MaskingIndices(ids_shuffle[:, :keep], ids_restore, mask.float())


def gather_tokens(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """`(B, N, C)` -> `(B, V, C)`: the tokens at `ids_keep`, in that order."""
    return torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def gather_patches(pixel_values: torch.Tensor, ids_keep: torch.Tensor,
                   patch_size: int | tuple[int, int]) -> torch.Tensor:
    """`(B, C, H, W)` image -> `(B, C, ph, V * pw)`: the patches at `ids_keep` (row-major patch index), side by side
    in one row of patches, in `ids_keep` order. A patch embedding (stride = kernel = patch) of this strip gives
    exactly the tokens of the kept patches, so the removed patches cost nothing. `H`, `W`: multiples of the patch."""
    patch_h, patch_w = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    batch, channels, height, width = pixel_values.shape
    if height % patch_h or width % patch_w:
        raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {patch_h}x{patch_w}")
    rows, cols = height // patch_h, width // patch_w
    grid = pixel_values.reshape(batch, channels, rows, patch_h, cols, patch_w).permute(0, 2, 4, 1, 3, 5)
    # (B, V, C, ph, pw): copies the kept pixels only
    patches = grid[torch.arange(batch, device=ids_keep.device).unsqueeze(1), ids_keep // cols, ids_keep % cols]
    return patches.permute(0, 2, 3, 1, 4).reshape(batch, channels, patch_h, ids_keep.shape[1] * patch_w)


def restore_tokens(visible: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor,
                   num_prefix_tokens: int = 0) -> torch.Tensor:
    """`(B, V, C)` kept tokens -> `(B, N, C)` in patch order, masked positions filled with `mask_token` `(1, 1, C)`.

    With `num_prefix_tokens` P, `visible` is `(B, P + V, C)` whose first P tokens ([CLS], registers) stay in front,
    unmoved, and the result is `(B, P + N, C)` (one gather instead of restoring and concatenating)."""
    batch, kept, channels = visible.shape
    fill = mask_token.to(visible.dtype).expand(batch, ids_restore.shape[1] + num_prefix_tokens - kept, channels)
    full = torch.cat([visible, fill], dim=1)
    index = ids_restore
    if num_prefix_tokens:
        prefix = torch.arange(num_prefix_tokens, device=ids_restore.device, dtype=ids_restore.dtype)
        index = torch.cat([prefix.expand(batch, -1), ids_restore + num_prefix_tokens], dim=1)
    return torch.gather(full, 1, index.unsqueeze(-1).expand(-1, -1, channels))


__all__ = ["MaskingIndices", "check_mask_ratio", "num_visible_tokens", "random_masking", "masking_from_mask",
           "gather_tokens", "gather_patches", "restore_tokens"]
