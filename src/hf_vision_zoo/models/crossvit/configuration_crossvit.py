"""Configuration of the zoo's CrossViT (Chen, Fan and Panda, ICCV 2021, https://arxiv.org/abs/2103.14899).

Field names follow the official IBM/CrossViT `VisionTransformer` arguments (`img_size` -> `image_size`, `depth`,
`embed_dim`, `num_heads`, `mlp_ratio`, `multi_conv`); every per-branch field is a list with one entry per branch.
"""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import check_probabilities


@strict
class CrossVitConfig(PreTrainedConfig):
    r"""CrossViT hyper-parameters; the defaults are CrossViT-Ti (`crossvit_tiny_240`, official `crossvit_tiny_224`).

    image_size: the square image size of each branch (official `img_size`, e.g. `[240, 224]`). Each branch
        bicubic-resizes the input to its own size when the input has another size, as the official code does; the
        image processor makes `max(image_size)` px images (the official evaluation's `--input-size 240`).
    patch_size: patch side of each branch (`[12, 16]`: a small-patch and a large-patch branch).
    embed_dim / num_heads: width and attention heads of each branch.
    depth: one entry per multi-scale block, `[blocks of branch 0, blocks of branch 1, ..., cross-attention layers]`.
        A last entry of 0 means one cross-attention layer (the official "backward capability" rule); every
        published model uses `[1, n, 0]`.
    mlp_ratio: MLP ratio of each branch's transformer blocks (a trailing extra entry, as in the official configs'
        `[4, 4, 1]`, is accepted and unused: the cross-attention layers have no MLP).
    multi_conv: the convolutional patch embedding of the dagger (†) models instead of one strided convolution;
        it exists for patch sizes 12 and 16 only.
    hidden_dropout_prob: the official `drop_rate` (after the position embedding and inside the blocks).
    drop_path_rate: 0 as in the official and timm model classes (the official training script passes 0.1).
    """

    model_type = "zoo_crossvit"
    attribute_map = {"num_hidden_layers": "num_layers"}

    image_size: list[int] | tuple[int, ...] = (240, 224)
    patch_size: list[int] | tuple[int, ...] = (12, 16)
    num_channels: int = 3
    embed_dim: list[int] | tuple[int, ...] = (96, 192)
    depth: list[list[int]] | tuple = ((1, 4, 0), (1, 4, 0), (1, 4, 0))
    num_heads: list[int] | tuple[int, ...] = (3, 3)
    mlp_ratio: list[float | int] | tuple = (4.0, 4.0, 1.0)
    qkv_bias: bool = True
    multi_conv: bool = False
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6

    def __post_init__(self, **kwargs):
        self.image_size = [int(s) for s in self.image_size] if isinstance(self.image_size, (list, tuple)) \
            else self.image_size
        for name in ("patch_size", "embed_dim", "num_heads", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                setattr(self, name, list(value))
        if isinstance(self.depth, (list, tuple)):
            self.depth = [list(block) if isinstance(block, (list, tuple)) else block for block in self.depth]
        self.num_branches = len(self.patch_size) if isinstance(self.patch_size, list) else 0
        self.num_layers = len(self.depth) if isinstance(self.depth, list) else 0
        self.hidden_size = sum(self.embed_dim) if isinstance(self.embed_dim, list) else 0
        # the embedding output, then one entry per multi-scale block (what hidden_states holds)
        self.stage_names = ["embeddings"] + [f"block{i}" for i in range(1, self.num_layers + 1)]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        for name in ("image_size", "patch_size", "embed_dim", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ValueError(f"{name} must be a list of positive ints (one per branch), got {value!r}")
        branches = len(self.patch_size)
        if branches < 2:
            raise ValueError(f"CrossViT needs at least two branches; patch_size {self.patch_size} gives {branches}")
        for name in ("image_size", "embed_dim", "num_heads"):
            if len(getattr(self, name)) != branches:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries but patch_size has {branches} branches; give "
                    f"one per branch"
                )
        for i, (size, patch, dim, heads) in enumerate(
                zip(self.image_size, self.patch_size, self.embed_dim, self.num_heads)):
            if size % patch:
                raise ValueError(
                    f"branch {i}: image_size {size} is not a multiple of patch_size {patch}, so its patches do not "
                    f"tile the image (e.g. 240 / 12 and 224 / 16 in CrossViT-Ti)"
                )
            if dim % heads:
                raise ValueError(f"branch {i}: embed_dim {dim} is not divisible by num_heads {heads}")
            if self.multi_conv and patch not in (12, 16):
                raise ValueError(
                    f"multi_conv (the dagger models' convolutional patch embedding) exists for patch sizes 12 and 16 "
                    f"only, but branch {i} has patch_size {patch}"
                )
            if self.multi_conv and dim % 4:
                raise ValueError(f"multi_conv needs embed_dim divisible by 4; branch {i} has {dim}")
        # the cross-attention of branch i runs at the width and heads of branch i + 1
        if not isinstance(self.depth, list) or not self.depth:
            raise ValueError(f"depth must be a non-empty list of multi-scale blocks, got {self.depth!r}")
        for k, block in enumerate(self.depth):
            if not isinstance(block, list) or len(block) != branches + 1 or not all(
                    isinstance(v, int) for v in block):
                raise ValueError(
                    f"depth[{k}] must list the blocks of each of the {branches} branches and then the cross-attention "
                    f"layers ({branches + 1} ints, e.g. [1, 4, 0]), got {block!r}"
                )
            if any(v < 1 for v in block[:-1]) or block[-1] < 0:
                raise ValueError(f"depth[{k}] = {block}: every branch needs at least one block, cross layers >= 0")
            if max(block[:-1]) != block[-2]:
                raise ValueError(
                    f"depth[{k}] = {block}: the last branch must be the deepest; the official stochastic-depth "
                    f"schedule (and its code) is only defined then"
                )
        if not isinstance(self.mlp_ratio, list) or len(self.mlp_ratio) not in (branches, branches + 1) or not all(
                isinstance(r, (int, float)) and r > 0 for r in self.mlp_ratio):
            raise ValueError(
                f"mlp_ratio must hold one positive ratio per branch (optionally one more, unused), got "
                f"{self.mlp_ratio!r}"
            )
        if self.num_channels < 1:
            raise ValueError(f"num_channels must be a positive int, got {self.num_channels}")
        check_probabilities(self, "drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob")

    @property
    def input_size(self) -> int:
        """Side of the images the image processor makes: the largest branch size (no branch is upsampled)."""
        return max(self.image_size)

    @property
    def image_size_2d(self) -> tuple[int, int]:
        """`(input_size, input_size)`: the model's input resolution (the conversion tools read this)."""
        return (self.input_size, self.input_size)

    def grid_sizes(self) -> list[int]:
        """Patch-grid side of each branch."""
        return [size // patch for size, patch in zip(self.image_size, self.patch_size)]

    def drop_path_rates(self) -> list[list[float]]:
        """Per multi-scale block, the official stochastic-depth rates: a linear ramp over the last branch's blocks
        and the cross layers; branch blocks take entry j, the cross-attention takes the last entry."""
        total = sum(sum(block[-2:]) for block in self.depth)
        ramp = [self.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        rates, start = [], 0
        for block in self.depth:
            length = max(block[:-1]) + block[-1]
            rates.append(ramp[start:start + length])
            start += length
        return rates


__all__ = ["CrossVitConfig"]
