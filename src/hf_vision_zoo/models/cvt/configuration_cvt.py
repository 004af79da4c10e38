"""Configuration of the zoo's CvT (Wu et al., ICCV 2021, https://arxiv.org/abs/2103.15808).

Field names follow transformers' `CvtConfig` (every per-stage setting is a list with one entry per stage), so a
transformers config converts field for field. Additions: `image_size` (the resolution the weights were trained at; the
network itself takes any size), `hidden_act` (the official code trains with QuickGELU, transformers runs exact GELU)
and the backbone's `out_features`.
"""

from huggingface_hub.dataclasses import strict
from transformers.backbone_utils import BackboneConfigMixin
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import check_image_size_pair, check_per_stage_lengths, height_width, prepare_stage_config

_PER_STAGE = ("patch_sizes", "patch_stride", "patch_padding", "embed_dim", "num_heads", "depth", "mlp_ratio",
              "attention_drop_rate", "drop_rate", "drop_path_rate", "qkv_bias", "cls_token", "qkv_projection_method",
              "kernel_qkv", "padding_kv", "stride_kv", "padding_q", "stride_q")
PROJECTION_METHODS = ("dw_bn", "avg")


@strict
class CvtConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""CvT hyper-parameters; the defaults are CvT-13 (`cvt_13_224`), as in the official
    `experiments/imagenet/cvt/cvt-13-224x224.yaml`.

    patch_sizes / patch_stride / patch_padding: kernel, stride and padding of each stage's convolutional token
        embedding (a Conv2d followed by LayerNorm).
    embed_dim / num_heads / depth / mlp_ratio: width, heads, blocks and MLP ratio per stage.
    Every per-stage field also takes one value for all stages (the uniform defaults are given that way).
    drop_path_rate: per stage, the stochastic-depth rate of its last block (rates grow linearly from 0 within a
        stage, the official rule).
    cls_token: per stage; only the last stage may have one (the official models put it in stage 3).
    qkv_projection_method: "dw_bn" (depthwise conv + BatchNorm for q, k and v, the paper's convolutional projection)
        or "avg" (average pooling for k/v, none for q). The official code's "linear" (no projection at all) fails in
        its own forward and is not offered.
    kernel_qkv / padding_q / stride_q / padding_kv / stride_kv: the convolutional projection's kernel, and padding and
        stride for the queries and for the keys/values (stride 2 for k/v is the paper's "squeezed" projection).
    hidden_act: "quick_gelu" (x * sigmoid(1.702 x), what the official code trains with) or "gelu" (transformers).
    image_size: the training resolution (used by the image processor and the tests; any input size works).
    out_features / out_indices: what `CvtBackbone` returns, from `stage_names = ["stem", "stage1", ...]`, where
        "stem" is the first token embedding's output.
    """

    model_type = "zoo_cvt"
    attribute_map = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}

    image_size: int | list[int] | tuple[int, int] = 224
    num_channels: int = 3
    patch_sizes: int | list[int] | tuple[int, ...] = (7, 3, 3)
    patch_stride: int | list[int] | tuple[int, ...] = (4, 2, 2)
    patch_padding: int | list[int] | tuple[int, ...] = (2, 1, 1)
    embed_dim: int | list[int] | tuple[int, ...] = (64, 192, 384)
    num_heads: int | list[int] | tuple[int, ...] = (1, 3, 6)
    depth: list[int] | tuple[int, ...] = (1, 2, 10)
    mlp_ratio: float | int | list[float | int] | tuple[float | int, ...] = 4.0
    attention_drop_rate: float | int | list[float | int] | tuple[float | int, ...] = 0.0
    drop_rate: float | int | list[float | int] | tuple[float | int, ...] = 0.0
    drop_path_rate: float | int | list[float | int] | tuple[float | int, ...] = (0.0, 0.0, 0.1)
    qkv_bias: bool | list[bool] | tuple[bool, ...] = True
    cls_token: bool | list[bool] | tuple[bool, ...] = (False, False, True)
    qkv_projection_method: str | list[str] | tuple[str, ...] = "dw_bn"
    kernel_qkv: int | list[int] | tuple[int, ...] = 3
    padding_kv: int | list[int] | tuple[int, ...] = 1
    stride_kv: int | list[int] | tuple[int, ...] = 2
    padding_q: int | list[int] | tuple[int, ...] = 1
    stride_q: int | list[int] | tuple[int, ...] = 1
    hidden_act: str = "quick_gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    batch_norm_eps: float = 1e-5
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs):
        stages = len(self.depth) if isinstance(self.depth, (list, tuple)) else 1
        for name in _PER_STAGE:  # a single value stands for every stage
            value = getattr(self, name)
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else [value] * stages)
        prepare_stage_config(self, (), kwargs, depths="depth", widths="embed_dim")
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        stages = len(self.depth)
        if not stages or any(d < 1 for d in self.depth):
            raise ValueError(f"depth must be a non-empty list of positive ints (blocks per stage), got {self.depth}")
        check_per_stage_lengths(self, _PER_STAGE, stages, reference="depth")
        for i, (dim, heads) in enumerate(zip(self.embed_dim, self.num_heads)):
            if dim < 1 or heads < 1 or dim % heads:
                raise ValueError(f"stage {i + 1}: num_heads[{i}]={heads} does not divide embed_dim[{i}]={dim}")
        positive = ("patch_sizes", "patch_stride", "kernel_qkv", "stride_kv", "stride_q")
        for name in positive:
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"{name} must be positive ints, got {getattr(self, name)}")
        for name in ("patch_padding", "padding_kv", "padding_q"):
            if any(v < 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be non-negative ints, got {getattr(self, name)}")
        for i, (method, kernel, pad) in enumerate(zip(self.qkv_projection_method, self.kernel_qkv, self.padding_kv)):
            if method == "avg" and 2 * pad > kernel:
                raise ValueError(f"padding_kv[{i}]={pad} is more than half of kernel_qkv[{i}]={kernel} (average "
                                 f"pooling needs padding <= kernel / 2)")
        for i, method in enumerate(self.qkv_projection_method):
            if method not in PROJECTION_METHODS:
                raise ValueError(
                    f"qkv_projection_method[{i}]={method!r} is unknown; expected one of {PROJECTION_METHODS}"
                )
        for i, (method, kernel, stride, pad) in enumerate(zip(self.qkv_projection_method, self.kernel_qkv,
                                                             self.stride_q, self.padding_q)):
            if method == "dw_bn" and (stride != 1 or 2 * pad != kernel - 1):
                raise ValueError(
                    f"stage {i + 1}: the query projection must keep the token grid (the residual adds to it): "
                    f"stride_q[{i}]={stride} must be 1 and padding_q[{i}]={pad} must be (kernel_qkv[{i}] - 1) / 2"
                )
        if any(self.cls_token[:-1]):
            raise ValueError(
                f"cls_token={self.cls_token}: only the last stage may have a class token (the official models use "
                f"[False, ..., True]; an earlier stage's token would be discarded)"
            )
        if any(r <= 0 for r in self.mlp_ratio):
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        for name in ("drop_path_rate", "drop_rate", "attention_drop_rate"):
            if any(not 0.0 <= r < 1.0 for r in getattr(self, name)):
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.num_channels < 1:
            raise ValueError(f"num_channels must be a positive int, got {self.num_channels}")
        check_image_size_pair(self.image_size)
        if min(self.image_size_2d) < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than one patch ({self.patch_size} px, the "
                             f"first token embedding's stride)")
        if self.hidden_act not in ("quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"):
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; use 'quick_gelu' (official) or 'gelu'")

    @property
    def depths(self) -> list[int]:
        """Blocks per stage (the name the rest of the zoo uses for `depth`)."""
        return list(self.depth)

    @property
    def patch_size(self) -> int:
        """Pixels per first-stage token side: the stride of the first convolutional token embedding."""
        return int(self.patch_stride[0])

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return height_width(self.image_size)


__all__ = ["CvtConfig"]
