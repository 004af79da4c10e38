"""Configuration of the zoo's Swin Transformer (Liu et al., ICCV 2021, https://arxiv.org/abs/2103.14030).

Field names follow transformers' `SwinConfig` so a transformers Swin config converts field for field.
"""

from huggingface_hub.dataclasses import strict
from transformers.backbone_utils import BackboneConfigMixin
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import (
    check_image_size_pair,
    check_per_stage_lengths,
    check_positive,
    check_probabilities,
    check_stage_depths,
    height_width,
    prepare_stage_config,
)


@strict
class SwinConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""Swin Transformer hyper-parameters; the defaults are Swin-T (`swin_tiny_patch4_window7_224`).

    image_size: the resolution the model is built for; it fixes each stage's window and shift as in the official
        code (a stage whose feature map is no larger than the window uses one window and no shift). Other input
        sizes are zero-padded to whole patches and windows.
    depths / num_heads: blocks and attention heads per stage.
    window_size: side of the square attention window (7 for 224 px, 12 for 384 px).
    use_absolute_embeddings: the optional learned absolute position embedding ("ape" in the official code).
    out_features / out_indices: what `SwinBackbone` returns, from `stage_names = ["stem", "stage1", ...]`.
    """

    model_type = "zoo_swin"
    attribute_map = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 4
    num_channels: int = 3
    embed_dim: int = 96
    depths: list[int] | tuple[int, ...] = (2, 2, 6, 2)
    num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.1
    hidden_act: str = "gelu"
    use_absolute_embeddings: bool = False
    patch_norm: bool = True
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs):
        prepare_stage_config(self, ("depths", "num_heads"), kwargs, widths=None)
        self.hidden_size = int(self.embed_dim * 2 ** (self.num_layers - 1))
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        check_stage_depths(self)
        check_per_stage_lengths(self, ("num_heads",), len(self.depths))
        for i, heads in enumerate(self.num_heads):
            dim = self.embed_dim * 2**i
            if heads < 1 or dim % heads:
                raise ValueError(
                    f"stage {i + 1} has width {dim} (embed_dim * 2**{i}) which num_heads[{i}]={heads} does not divide"
                )
        check_positive(self, "patch_size", "window_size", "embed_dim", "num_channels")
        check_image_size_pair(self.image_size)
        height, width = self.image_size_2d
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than one patch ({self.patch_size})")
        grid = (height // self.patch_size, width // self.patch_size)
        if self.window_size > min(grid):
            raise ValueError(
                f"window_size {self.window_size} is larger than the {grid[0]}x{grid[1]} patch grid of the first "
                f"stage (image_size {self.image_size}, patch_size {self.patch_size}); use a window of at most "
                f"{min(grid)} or a larger image_size. (Later, smaller stages are clamped to one window, as in the "
                f"official code.)"
            )
        check_probabilities(self, "drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob")

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return height_width(self.image_size)

    def stage_resolutions(self) -> list[tuple[int, int]]:
        """Patch-grid size of each stage at `image_size` (the official code's `input_resolution`)."""
        height, width = self.image_size_2d
        grid = (height // self.patch_size, width // self.patch_size)
        return [(grid[0] // 2**i, grid[1] // 2**i) for i in range(self.num_layers)]


__all__ = ["SwinConfig"]
