"""Configuration of the zoo's S2AFormer (Xu et al., "S2AFormer: Strip Self-Attention for Efficient Vision
Transformer", IEEE TIP 2025, https://arxiv.org/abs/2505.22195). There is no official code; see the modeling module's
docstring for what comes from the paper and what was chosen here.
"""

from huggingface_hub.dataclasses import strict
from transformers.backbone_utils import BackboneConfigMixin
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import (
    check_image_size_pair,
    check_positive,
    check_probabilities,
    height_width,
    prepare_stage_config,
)

NUM_STAGES = 4
STEM_STRIDE = 2  # the stem's first 3x3 conv; each stage's patch embedding halves the map again


@strict
class S2AFormerConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""S2AFormer hyper-parameters. The paper's per-variant widths were not available to us: the defaults are a
    reconstruction of about Swin-T's size (25.7M parameters, 8.84 GFLOPs at 224 px), not a published model.

    image_size: the resolution the model is built for; every stage's token grid at this size must be divisible by
        the stage's `sr_ratios` entry (other input sizes are zero-padded before the K/V reduction).
    stem_channels: width of the stem's three 3x3 convs (the first has stride 2).
    embed_dims / depths / num_heads: width, number of Hybrid Perception Blocks and attention heads per stage.
    sr_ratios: spatial reduction of K and V per stage (a depth-wise `r x r` conv with stride `r`; 1 = none).
    qk_compression_ratios: Q and K are projected to `embed_dims[i] // ratio` channels (V keeps `embed_dims[i]`).
    local_kernel_size: kernel of the HPB's first depth-wise conv (`x = DWConv(x) + x`).
    use_lim / lim_kernel_size: the Local Interaction Module branch and its depth-wise kernel.
    patch_size (read-only): the stem's stride, 2; `hidden_states[0]` is the stem's map.
    out_features / out_indices: what `S2AFormerBackbone` returns, from `stage_names = ["stem", "stage1", ...]`.
    """

    model_type = "zoo_s2aformer"
    attribute_map = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}

    image_size: int | list[int] | tuple[int, int] = 224
    num_channels: int = 3
    stem_channels: int = 32
    embed_dims: list[int] | tuple[int, ...] = (64, 128, 320, 512)
    depths: list[int] | tuple[int, ...] = (3, 4, 12, 3)
    num_heads: list[int] | tuple[int, ...] = (1, 2, 5, 8)
    sr_ratios: list[int] | tuple[int, ...] = (8, 4, 2, 1)
    qk_compression_ratios: list[int] | tuple[int, ...] = (4, 4, 4, 4)
    local_kernel_size: int = 3
    use_lim: bool = True
    lim_kernel_size: int = 3
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs):
        prepare_stage_config(self, ("embed_dims", "depths", "num_heads", "sr_ratios", "qk_compression_ratios"), kwargs)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        for name in ("embed_dims", "depths", "num_heads", "sr_ratios", "qk_compression_ratios"):
            value = getattr(self, name)
            if len(value) != NUM_STAGES:
                raise ValueError(f"{name} must give one value per stage ({NUM_STAGES} stages), got {value}")
            if any(int(v) < 1 for v in value):
                raise ValueError(f"{name} must hold positive ints, got {value}")
        for i, (dim, heads, ratio) in enumerate(zip(self.embed_dims, self.num_heads, self.qk_compression_ratios)):
            if dim % heads:
                raise ValueError(f"stage {i + 1}: num_heads[{i}]={heads} does not divide embed_dims[{i}]={dim}")
            if dim % ratio:
                raise ValueError(
                    f"stage {i + 1}: qk_compression_ratios[{i}]={ratio} does not divide embed_dims[{i}]={dim}"
                )
            if (dim // ratio) % heads:
                raise ValueError(
                    f"stage {i + 1}: the compressed Q/K width embed_dims[{i}] // qk_compression_ratios[{i}] = "
                    f"{dim // ratio} is not divisible by num_heads[{i}]={heads}; every head needs the same number "
                    f"of Q/K channels"
                )
        check_positive(self, "stem_channels", "num_channels")
        for name in ("local_kernel_size", "lim_kernel_size"):
            kernel = getattr(self, name)
            if kernel < 1 or kernel % 2 == 0:
                raise ValueError(f"{name} must be a positive odd int (same-size depth-wise conv), got {kernel}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        check_image_size_pair(self.image_size)
        height, width = self.image_size_2d
        if min(height, width) < self.total_stride:
            raise ValueError(f"image_size {self.image_size} is smaller than the network's total stride "
                             f"{self.total_stride}")
        for i, ((grid_h, grid_w), ratio) in enumerate(zip(self.stage_resolutions(), self.sr_ratios)):
            if grid_h % ratio or grid_w % ratio:
                raise ValueError(
                    f"sr_ratios[{i}]={ratio} does not divide the {grid_h}x{grid_w} token grid of stage {i + 1} at "
                    f"image_size {self.image_size} (stride {self.stage_strides()[i]}); choose a ratio that divides "
                    f"it or another image_size"
                )
        check_probabilities(self, "drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob")

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return height_width(self.image_size)

    @property
    def patch_size(self) -> int:
        """Stride of the stem, whose map is `hidden_states[0]` (read-only; the stages each halve it again)."""
        return STEM_STRIDE

    @property
    def total_stride(self) -> int:
        return STEM_STRIDE * 2**self.num_layers

    def stage_strides(self) -> list[int]:
        """Output stride of each stage: 4, 8, 16, 32."""
        return [STEM_STRIDE * 2 ** (i + 1) for i in range(self.num_layers)]

    def stage_resolutions(self, image_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Token grid of each stage for an input of `image_size` (default: the config's): every stride-2 step
        rounds up, as the padded convs do."""
        height, width = self.image_size_2d if image_size is None else image_size
        grids = []
        for _ in range(self.num_layers + 1):  # the stem, then one halving per stage
            height, width = -(-height // 2), -(-width // 2)
            grids.append((height, width))
        return grids[1:]


__all__ = ["S2AFormerConfig"]
