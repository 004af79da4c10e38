"""Configuration of the zoo's PPMA (Polyline Path Masked Attention for Vision Transformer, Zhao et al., NeurIPS 2025,
https://arxiv.org/abs/2506.15940). Field names follow the official `PPMAViT` arguments (zhongchenzhao/PPMA)."""

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
class PpmaConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""PPMA hyper-parameters; the defaults are PPMA-T (official `PPMAViT_T`).

    image_size: the input resolution of the published models (used by the image processor and the tests). The
        network itself accepts any input of at least one 4x4 patch: its masks and rotary angles are built for the
        actual token grid of every forward.
    embed_dims / depths / num_heads / mlp_ratios: width, blocks, heads and FFN ratio of each stage.
    chunkwise_recurrents: per stage, True for axial attention (row attention and column attention, each with its
        1-D structured mask, applied in both orders and averaged; cheap), False for full attention with the 2-D
        polyline path mask (both polyline orders averaged; memory grows with tokens**2).
    layerscales / layer_init_values: per-stage LayerScale on both residual branches and its initial value.
    projection: width of the classifier's pre-logits (Linear + BatchNorm + Swish before average pooling).
    out_features / out_indices: what `PpmaBackbone` returns, from `stage_names = ["stem", "stage1", ...]`.

    The official constructor's `init_values` and `heads_ranges` are accepted by its rotary module but never used
    (they are RMT's decay settings); they are not fields here.
    """

    model_type = "zoo_ppma"
    attribute_map = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}

    image_size: int | list[int] | tuple[int, int] = 224
    num_channels: int = 3
    embed_dims: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    depths: list[int] | tuple[int, ...] = (2, 2, 8, 2)
    num_heads: list[int] | tuple[int, ...] = (4, 4, 8, 16)
    mlp_ratios: list[float | int] | tuple[float | int, ...] = (3, 3, 3, 3)
    chunkwise_recurrents: list[bool] | tuple[bool, ...] = (True, True, False, False)
    layerscales: list[bool] | tuple[bool, ...] = (False, False, False, False)
    layer_init_values: float = 1e-6
    projection: int = 1024
    drop_path_rate: float | int = 0.1
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    backbone_norm_eps: float = 1e-5
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    # the convolutional stem (two stride-2 3x3 convs) turns each 4x4 patch into one token
    patch_size = 4

    def __post_init__(self, **kwargs):
        prepare_stage_config(self, ("embed_dims", "depths", "num_heads", "mlp_ratios", "chunkwise_recurrents",
                                    "layerscales"), kwargs)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        check_stage_depths(self)
        check_per_stage_lengths(self, ("embed_dims", "num_heads", "mlp_ratios", "chunkwise_recurrents", "layerscales"),
                                len(self.depths))
        for name in ("chunkwise_recurrents", "layerscales"):
            if not all(isinstance(v, bool) for v in getattr(self, name)):
                raise ValueError(f"{name} must be a list of bools, got {getattr(self, name)}")
        for i, (dim, heads) in enumerate(zip(self.embed_dims, self.num_heads)):
            if heads < 1 or dim < 1 or dim % heads:
                raise ValueError(f"stage {i + 1}: num_heads[{i}]={heads} does not divide embed_dims[{i}]={dim}")
            if (dim // heads) % 2:
                raise ValueError(
                    f"stage {i + 1}: head dim {dim // heads} (embed_dims[{i}] / num_heads[{i}]) is odd; the rotary "
                    f"position embedding rotates channel pairs, so it must be even"
                )
        if any(r <= 0 for r in self.mlp_ratios):
            raise ValueError(f"mlp_ratios must be positive, got {self.mlp_ratios}")
        check_positive(self, "projection", "num_channels")
        check_image_size_pair(self.image_size)
        if min(self.image_size_2d) < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than one {self.patch_size}x{self.patch_size} "
                             f"patch of the convolutional stem")
        check_probabilities(self, "drop_path_rate")

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return height_width(self.image_size)

    def stage_resolutions(self, image_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Token grid of each stage for an input of `image_size` (default: the config's); every stride-2 conv
        rounds up."""
        height, width = self.image_size_2d if image_size is None else image_size
        height, width = -(-height // self.patch_size), -(-width // self.patch_size)
        grids = []
        for _ in range(self.num_layers):
            grids.append((height, width))
            height, width = -(-height // 2), -(-width // 2)
        return grids


__all__ = ["PpmaConfig"]
