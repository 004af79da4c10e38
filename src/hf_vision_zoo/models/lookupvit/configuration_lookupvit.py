"""Configuration of the zoo's LookupViT (Koner et al., ECCV 2024, https://arxiv.org/abs/2407.12753).

A `VitConfig` (the lookup tokens are the ViT's patch tokens, so every ViT field keeps its meaning) plus the
compressed-token settings. No official code exists; see `modeling_lookupvit` for what is the paper's and what is the
zoo's reading.
"""

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig


@strict
class LookupVitConfig(VitConfig):
    r"""LookupViT hyper-parameters; the defaults are a ViT-B/16-width model at 224 px (lookup grid 14x14).

    compressed_grid_size: the compressed-token grid (int or [height, width]); M = h*w tokens made by bilinearly
        resizing the lookup-token grid. Must give fewer tokens than the lookup grid. Can be overridden per forward
        call (multi-resolution inference).
    lookup_mlp_ratio: hidden width of the lookup tokens' MLP relative to hidden_size (the compressed tokens' full
        MLP uses `mlp_ratio`).
    attention_reuse: the scatter step (compressed -> lookup) reuses the gather step's query-key scores, transposed
        and softmax-normalised over the compressed tokens, with only a value projection; False gives the scatter
        its own query/key projections.
    class_token / registers / mask token / pooler: not supported (pooling is the mean of each normalised token set,
        summed), so `class_token` defaults to False and `pooling` to "mean".
    """

    model_type = "zoo_lookupvit"

    class_token: bool = False
    pooling: str = "mean"
    compressed_grid_size: int | list[int] | tuple[int, int] = 5
    lookup_mlp_ratio: float | int = 0.5
    attention_reuse: bool = True

    def __post_init__(self, **kwargs):
        if isinstance(self.compressed_grid_size, (list, tuple)):
            self.compressed_grid_size = [int(s) for s in self.compressed_grid_size]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject settings LookupViT cannot use, naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        unsupported = {"class_token": self.class_token, "num_register_tokens": self.num_register_tokens,
                       "use_pooler": self.use_pooler, "use_mask_token": self.use_mask_token,
                       "use_fc_norm": bool(self.use_fc_norm)}
        for name, value in unsupported.items():
            if value:
                raise ValueError(f"LookupViT does not support {name}={value!r}: it has no prefix tokens and pools "
                                 f"the mean of each normalised token set (compressed + lookup)")
        if self.pooling != "mean":
            raise ValueError(f"LookupViT pools the mean of both token sets: pooling must be 'mean', "
                             f"got {self.pooling!r}")
        if self.lookup_mlp_ratio <= 0:
            raise ValueError(f"lookup_mlp_ratio must be positive, got {self.lookup_mlp_ratio}")
        check_compressed_grid(self.compressed_grid_size_2d, self.grid_size)

    @property
    def compressed_grid_size_2d(self) -> tuple[int, int]:
        return to_grid(self.compressed_grid_size)

    @property
    def num_compressed_tokens(self) -> int:
        height, width = self.compressed_grid_size_2d
        return height * width


def to_grid(size) -> tuple[int, int]:
    """An int or a pair of ints as `(height, width)`; anything else is a ValueError."""
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"compressed_grid_size must be an int or [height, width], got {size!r}")


def check_compressed_grid(compressed: tuple[int, int], lookup: tuple[int, int]) -> None:
    """The compressed grid must be positive, no larger than the lookup grid on either side, and strictly smaller in
    tokens (otherwise nothing is compressed)."""
    if min(compressed) < 1:
        raise ValueError(f"compressed_grid_size must be positive, got {compressed[0]}x{compressed[1]}")
    if compressed[0] > lookup[0] or compressed[1] > lookup[1] or compressed[0] * compressed[1] >= lookup[0] * lookup[1]:
        raise ValueError(
            f"compressed_grid_size {compressed[0]}x{compressed[1]} must be smaller than the lookup (patch) grid "
            f"{lookup[0]}x{lookup[1]} on each side and in tokens: compressed tokens are fewer than lookup tokens"
        )


__all__ = ["LookupVitConfig"]
