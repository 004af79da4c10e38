"""Configuration of GMML, Group Masked Model Learning (Atito, Awais and Kittler, "GMML is All you Need",
https://arxiv.org/abs/2205.14986). Official code: https://github.com/Sara-Ahmed/GMML (GPL; read, not copied).

`GmmlConfig` is a `VitConfig` (the official backbone is DINO's ViT: [CLS], learned positions, qkv bias, LayerNorm eps
1e-6, drop path 0.1) plus the reconstruction and corruption settings, under the official command-line names
(`--recons_blocks`, `--drop_perc`, `--drop_replace`, `--drop_type`, `--drop_align`, `--drop_only`).
"""

from huggingface_hub.dataclasses import strict

from ...layers.group_masking import check_group_masking_args, parse_drop_type
from ..vit.configuration_vit import VitConfig


@strict
class GmmlConfig(VitConfig):
    r"""GMML hyper-parameters; the defaults are the official `main.py` recipe on a ViT-B/16 at 224 px (the
    official script's default backbone is `vit_small`, see the registered variants).

    recons_blocks: 1-based blocks whose outputs are averaged, then normalised by the final LayerNorm, and fed to
        the reconstruction head (official "6-8-10-12"; a "6-8-10-12" string is accepted too).
    drop_perc: largest fraction of an image corrupted with `drop_type` (the fraction is uniform in
        [min(0.5, drop_perc), drop_perc], then rounded up to whole blocks).
    drop_replace: largest fraction replaced from another image of the batch (0 = never); such an image is chosen
        with probability 1 / (number of drop types + 1).
    drop_type: '-'-separated corruptions among "noise", "zeros", "replace" (same-image block copies).
    drop_align: block alignment in pixels (1 = official default; `patch_size` gives whole-patch blocks).
    max_block_size: largest block side as a fraction of the image side (official `max_block_sz`, fixed 0.3).
    drop_only: the L1 loss covers only the corrupted pixels (official `--drop_only 1`); False = every pixel.
    """

    model_type = "zoo_gmml"

    drop_path_rate: float | int = 0.1
    recons_blocks: list[int] | tuple[int, ...] | str = (6, 8, 10, 12)
    drop_perc: float | int = 0.75
    drop_replace: float | int = 0.3
    drop_type: str = "noise"
    drop_align: int = 1
    max_block_size: float = 0.3
    drop_only: bool = True

    def __post_init__(self, **kwargs):
        if isinstance(self.recons_blocks, str):
            try:
                self.recons_blocks = [int(b) for b in self.recons_blocks.split("-")]
            except ValueError:
                raise ValueError(f"recons_blocks must be block numbers like '6-8-10-12', got {self.recons_blocks!r}")
        elif isinstance(self.recons_blocks, (list, tuple)):
            self.recons_blocks = list(self.recons_blocks)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        blocks = self.recons_blocks
        if (not blocks or any(isinstance(b, bool) or not isinstance(b, int) for b in blocks)
                or len(set(blocks)) != len(blocks)):
            raise ValueError(f"recons_blocks must be distinct 1-based block numbers, got {blocks}")
        if not all(1 <= b <= self.num_hidden_layers for b in blocks):
            raise ValueError(f"recons_blocks {blocks} must lie in 1..num_hidden_layers ({self.num_hidden_layers}); "
                             f"set recons_blocks for this depth (official: 6-8-10-12 for 12 blocks)")
        parse_drop_type(self.drop_type)
        height, width = self.image_size_2d
        for name in ("drop_perc", "drop_replace"):
            try:
                check_group_masking_args(height, width, getattr(self, name), self.drop_align, self.max_block_size)
            except ValueError as err:
                raise ValueError(f"{name}={getattr(self, name)}, drop_align={self.drop_align}, max_block_size="
                                 f"{self.max_block_size} at image_size {self.image_size}: {err}") from None


__all__ = ["GmmlConfig"]
