"""Group masking: GMML's corruption of groups of connected pixels/patches (Atito, Awais and Kittler, "GMML is All
you Need", https://arxiv.org/abs/2205.14986; official code https://github.com/Sara-Ahmed/GMML,
`datasets/datasets_utils.py`, read for the algorithm, not copied: it is GPL).

The algorithm, per image of height H and width W (the official `GMML_drop_rand_patches`):

1. a target area `U(min(0.5, max_replace), max_replace) * H * W` pixels is drawn;
2. rectangular blocks are added until the union of the blocks covers at least that many pixels: the top-left
   corner is `(randint(0, H - align) // align) * align` (and the same for the column), the height is
   `min(randint(align, int(H * max_block_size)), H - top)` rounded to a multiple of `align` (Python's
   round-half-to-even, as `round`), the width likewise; `randint(a, b)` is uniform on `a..b-1`;
3. the covered pixels are replaced by: N(0, 1) noise (`"noise"`), zeros (`"zeros"`), a block of the same size
   copied from another aligned position of the same (already partly corrupted) image (`"replace"`, the official
   fall-through branch), or the pixels at the same position of another image of the batch (other-image
   replacement, the official `GMML_replace_list`).

Over a batch (the official data pipeline + `GMML_replace_list` in `main.py`), with `drop_type = "t1-t2-..."` (k types)
and `drop_replace > 0`, each image is replaced from another image of the batch with probability `1 / (k + 1)` (the
donor is uniform over the batch, itself included, and the target area uses `max_replace = drop_replace`); otherwise
it is corrupted with one of the k types, chosen uniformly, with `max_replace = drop_perc`. The donor pixels are the
donor's clean pixels. `drop_replace = 0` disables other-image replacement, `drop_perc = 0` the typed corruption.

Differences from the official code (same distribution): every draw comes from one `torch.Generator` (the official
code mixes NumPy's global state, re-seeded from the OS at every call, Python's `random` and torch's global RNG), and
noise / zeros / other-image blocks are applied once through the final mask (overlapping blocks are overwritten by
fresh draws in the official loop, which gives the same result in distribution: i.i.d. N(0, 1) on every covered
pixel); same-image `"replace"` blocks are copied one after the other, as officially.
"""

from dataclasses import dataclass

import torch

CORRUPTION_TYPES = ("noise", "zeros", "replace")
# codes of `GroupMaskingOutput.corruption`
CORRUPTION_CODES = {"none": 0, "noise": 1, "zeros": 2, "replace": 3, "other_image": 4}


@dataclass
class GroupMaskingOutput:
    """corrupted_pixel_values: `(B, C, H, W)`; mask: `(B, H, W)` bool, True = corrupted pixel; corruption: `(B,)`
    long, a `CORRUPTION_CODES` value per image; donor_index: `(B,)` long, the batch index of the image the pixels
    were taken from for other-image replacement (-1 otherwise)."""

    corrupted_pixel_values: torch.Tensor
    mask: torch.Tensor
    corruption: torch.Tensor
    donor_index: torch.Tensor

    def patch_mask(self, patch_size: int) -> torch.Tensor:
        """`(B, N)` bool: patches with at least one corrupted pixel (exact when `align` is a multiple of the patch)."""
        return pixel_mask_to_patch_mask(self.mask, patch_size)


class _Draws:
    """Integer / uniform draws from one generator (None = torch's global RNG)."""

    def __init__(self, generator: torch.Generator | None):
        self.generator = generator

    def randint(self, low: int, high: int) -> int:
        """Uniform on low..high-1 (NumPy's `randint(low, high)`)."""
        return int(torch.randint(low, high, (), generator=self.generator))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator, dtype=torch.float64))


def parse_drop_type(drop_type: str) -> list[str]:
    """`"noise-zeros"` -> `["noise", "zeros"]`, each checked against `CORRUPTION_TYPES`."""
    if not isinstance(drop_type, str) or not drop_type:
        raise ValueError(f"drop_type must be a '-'-separated string of {CORRUPTION_TYPES}, got {drop_type!r}")
    types = drop_type.split("-")
    unknown = [t for t in types if t not in CORRUPTION_TYPES]
    if unknown:
        raise ValueError(f"unknown drop_type {unknown} in {drop_type!r}; choose from {CORRUPTION_TYPES} joined by '-'")
    return types


def check_group_masking_args(height: int, width: int, max_replace: float, align: int = 1,
                             max_block_size: float = 0.3) -> None:
    """Raise a ValueError unless the arguments give a well-defined (terminating) block sampler for an image."""
    if isinstance(max_replace, bool) or not 0.0 <= max_replace < 1.0:
        raise ValueError(f"the fraction of pixels to corrupt must be in [0, 1), got {max_replace}")
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise ValueError(f"align must be a positive int (1 = pixel blocks, patch_size = patch blocks), got {align}")
    if not 0.0 < max_block_size <= 1.0:
        raise ValueError(f"max_block_size must be in (0, 1], got {max_block_size}")
    for name, side in (("height", height), ("width", width)):
        if side <= align or int(side * max_block_size) <= align:
            raise ValueError(
                f"image {name} {side} is too small for blocks aligned to {align} px with max_block_size "
                f"{max_block_size}: int({side} * {max_block_size}) must exceed align (use a larger image, a smaller "
                f"align, or a larger max_block_size)"
            )
    reachable = coverable_extent(height, align, max_block_size) * coverable_extent(width, align, max_block_size)
    if max_replace * height * width > reachable:
        raise ValueError(
            f"blocks aligned to {align} px can cover at most {reachable / (height * width):.3f} of a {height}x{width} "
            f"image (max_block_size {max_block_size}), less than the requested fraction {max_replace}: the official "
            f"sampler would never stop; lower the fraction or the alignment, or use a larger image"
        )


def coverable_extent(side: int, align: int, max_block_size: float) -> int:
    """How far along a side of `side` pixels the blocks can reach (the blocks cover `[0, extent)`): the last
    aligned top `((side - align - 1) // align) * align` plus its largest (rounded) block."""
    top = ((side - align - 1) // align) * align
    largest = round(min(int(side * max_block_size) - 1, side - top) / align) * align
    return min(side, top + largest)


def sample_group_blocks(height: int, width: int, max_replace: float, align: int = 1, max_block_size: float = 0.3,
                        generator: torch.Generator | None = None, with_sources: bool = False, draws=None):
    """Draw the connected blocks of one image (steps 1-2 of the module doc). Returns `(mask (H, W) bool, blocks)`
    with `blocks` a list of `(top, left, height, width)` (plus `(source_top, source_left)` if `with_sources`, the
    aligned position a same-image `"replace"` block is copied from).

    draws: optional source of the random numbers instead of `generator`, an object with `randint(low, high)` and
    `uniform(low, high)` (drawn in the official order: the target fraction, then per block the top, left, height,
    width and, with sources, the source top and left); the tests replay the official code's recorded draws."""
    check_group_masking_args(height, width, max_replace, align, max_block_size)
    draws = _Draws(generator) if draws is None else draws
    target = draws.uniform(min(0.5, max_replace), max_replace) * height * width
    max_height, max_width = int(height * max_block_size), int(width * max_block_size)
    mask = torch.zeros(height, width, dtype=torch.bool)
    blocks, covered = [], 0
    while covered < target:
        top = (draws.randint(0, height - align) // align) * align
        left = (draws.randint(0, width - align) // align) * align
        block_h = round(min(draws.randint(align, max_height), height - top) / align) * align
        block_w = round(min(draws.randint(align, max_width), width - left) / align) * align
        block = (top, left, block_h, block_w)
        if with_sources:
            block += ((draws.randint(0, height - block_h) // align) * align,
                      (draws.randint(0, width - block_w) // align) * align)
        blocks.append(block)
        region = mask[top:top + block_h, left:left + block_w]
        covered += region.numel() - int(region.sum())  # newly covered pixels
        region.fill_(True)
    return mask, blocks


def _check_images(pixel_values: torch.Tensor) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or not pixel_values.is_floating_point():
        raise ValueError("pixel_values must be a float tensor of shape (batch, channels, height, width), got "
                         f"{getattr(pixel_values, 'shape', type(pixel_values))}")
    if pixel_values.shape[0] == 0:
        raise ValueError("pixel_values is an empty batch")


def group_mask_corruption(pixel_values: torch.Tensor, drop_perc: float = 0.75, drop_type: str = "noise",
                          drop_replace: float = 0.3, align: int = 1, max_block_size: float = 0.3,
                          generator: torch.Generator | None = None) -> GroupMaskingOutput:
    """GMML's corruption of a batch of (normalised) images (see the module doc for the distribution).

    drop_perc: largest fraction of an image corrupted by the `drop_type` corruptions (official `--drop_perc`).
    drop_type: '-'-separated corruption types among `CORRUPTION_TYPES` (official `--drop_type`).
    drop_replace: largest fraction replaced from another image of the batch; 0 disables it (official
        `--drop_replace`).
    align: block alignment in pixels (official `--drop_align`, 1 by default; the patch size gives patch blocks).
    max_block_size: largest block side as a fraction of the image side (official `max_block_sz`).
    generator: the source of every random draw (None: torch's global RNG).
    """
    _check_images(pixel_values)
    types = parse_drop_type(drop_type)
    batch, channels, height, width = pixel_values.shape
    check_group_masking_args(height, width, drop_perc, align, max_block_size)
    check_group_masking_args(height, width, drop_replace, align, max_block_size)
    draws = _Draws(generator)
    device = pixel_values.device
    clean = pixel_values.detach()
    corrupted = clean.clone()
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    corruption = torch.zeros(batch, dtype=torch.long)
    donors = torch.full((batch,), -1, dtype=torch.long)
    other_probability = 1.0 / (len(types) + 1) if drop_replace > 0 else 0.0
    for i in range(batch):
        if draws.uniform(0.0, 1.0) < other_probability:
            donor = draws.randint(0, batch)
            mask[i], _ = sample_group_blocks(height, width, drop_replace, align, max_block_size, generator)
            pixels = mask[i].to(device)
            corrupted[i] = torch.where(pixels, clean[donor], clean[i])
            corruption[i], donors[i] = CORRUPTION_CODES["other_image"], donor
            continue
        if drop_perc <= 0:
            continue
        kind = types[draws.randint(0, len(types))]
        corruption[i] = CORRUPTION_CODES[kind]
        mask[i], blocks = sample_group_blocks(height, width, drop_perc, align, max_block_size, generator,
                                              with_sources=kind == "replace")
        pixels = mask[i].to(device)
        if kind == "noise":
            noise = torch.randn((channels, height, width), generator=generator, dtype=clean.dtype,
                                device=generator.device if generator is not None else "cpu")
            corrupted[i] = torch.where(pixels, noise.to(device), clean[i])
        elif kind == "zeros":
            corrupted[i] = clean[i].masked_fill(pixels, 0.0)
        else:
            copy_blocks_within_image(corrupted[i], blocks)
    return GroupMaskingOutput(corrupted_pixel_values=corrupted, mask=mask.to(device), corruption=corruption,
                              donor_index=donors)


def copy_blocks_within_image(image: torch.Tensor, blocks: list) -> torch.Tensor:
    """Same-image `"replace"` corruption of a `(C, H, W)` image, in place: every `(top, left, h, w, source_top,
    source_left)` block is copied from its source, one after the other (a later block may copy corrupted pixels)."""
    for top, left, block_h, block_w, src_top, src_left in blocks:
        image[:, top:top + block_h, left:left + block_w] = \
            image[:, src_top:src_top + block_h, src_left:src_left + block_w].clone()
    return image


def pixel_mask_to_patch_mask(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """`(B, H, W)` bool pixel mask -> `(B, H/p * W/p)` bool: patches containing a corrupted pixel."""
    batch, height, width = mask.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"mask size {height}x{width} is not a multiple of the patch size {patch_size}")
    grid = mask.reshape(batch, height // patch_size, patch_size, width // patch_size, patch_size)
    return grid.any(dim=4).any(dim=2).flatten(1)


def patch_mask_to_pixel_mask(mask: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """`(B, N)` bool patch mask on a `grid` of patches -> `(B, H, W)` bool pixel mask."""
    batch = mask.shape[0]
    rows, cols = grid
    patches = mask.reshape(batch, rows, 1, cols, 1).expand(batch, rows, patch_size, cols, patch_size)
    return patches.reshape(batch, rows * patch_size, cols * patch_size)


__all__ = ["CORRUPTION_TYPES", "CORRUPTION_CODES", "GroupMaskingOutput", "parse_drop_type",
           "check_group_masking_args", "coverable_extent", "sample_group_blocks", "copy_blocks_within_image",
           "group_mask_corruption", "pixel_mask_to_patch_mask",
           "patch_mask_to_pixel_mask"]
