"""Configuration of the zoo's Vision Transformer (Dosovitskiy et al., ICLR 2021, https://arxiv.org/abs/2010.11929).

Field names follow transformers' `ViTConfig` where it has the setting (hidden_size, num_hidden_layers,
num_attention_heads, qkv_bias, layer_norm_eps, image_size, patch_size, num_channels, use_mask_token) and timm's
`VisionTransformer` arguments otherwise (class_token, no_embed_class, mlp_ratio, layer_scale via
`layer_scale_init_value`, register tokens, fc_norm).
"""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import check_image_size_pair, check_positive, check_probabilities, height_width

POOLINGS = ("cls", "mean")
POSITION_EMBEDDING_TYPES = ("learned", "sincos")


@strict
class VitConfig(PreTrainedConfig):
    r"""Plain ViT hyper-parameters; the defaults are ViT-B/16 at 224 px.

    layer_norm_eps: 1e-6 as in the official JAX/timm/MAE models; checkpoints from transformers use 1e-12.
    class_token / num_register_tokens: the prefix tokens, in the order [CLS], registers, patches (timm).
    no_embed_class: True when the position table covers only the patches (timm's DeiT-III / reg-token models).
    position_embedding_type: "learned", or "sincos" (MAE's fixed 2-D sin-cos table, a saved buffer).
    pooling: "cls" (the [CLS] token after the final norm) or "mean" (mean of the patch tokens).
    use_fc_norm: None means `pooling == "mean"`; when true, the final norm moves after the pooling (timm's `fc_norm`,
        MAE fine-tuning's global pool), i.e. `last_hidden_state` is not normalised.
    use_pooler: transformers' `ViTPooler` (dense + tanh on [CLS]) on top of `VitModel`, for converted `ViTModel`s.
    use_mask_token: adds the learnable mask token used by `bool_masked_pos` (SimMIM/GMML-style masking).
    interpolate_antialias: antialiasing of the bicubic position-table resampling (timm uses it; transformers not).
    """

    model_type = "zoo_vit"

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    class_token: bool = True
    num_register_tokens: int = 0
    no_embed_class: bool = False
    position_embedding_type: str = "learned"
    pooling: str = "cls"
    use_fc_norm: bool | None = None
    use_pooler: bool = False
    use_mask_token: bool = False
    layer_scale_init_value: float | None = None
    drop_path_rate: float | int = 0.0
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    interpolate_antialias: bool = False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = [int(s) for s in self.image_size]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        check_positive(self, "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        check_image_size_pair(self.image_size)
        for side in self.image_size_2d:
            if side < self.patch_size or side % self.patch_size:
                raise ValueError(
                    f"image_size {self.image_size} must be a positive multiple of patch_size {self.patch_size}"
                )
        if self.num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {self.num_register_tokens}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.pooling == "cls" and not self.class_token:
            raise ValueError("pooling='cls' needs class_token=True; use pooling='mean' for a model without [CLS]")
        if self.use_pooler and not self.class_token:
            raise ValueError("use_pooler (transformers' dense+tanh pooler on [CLS]) needs class_token=True")
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, got {self.position_embedding_type!r}"
            )
        if self.position_embedding_type == "sincos" and self.hidden_size % 4:
            raise ValueError(f"position_embedding_type='sincos' needs hidden_size divisible by 4, got {self.hidden_size}")
        if self.layer_scale_init_value is not None and self.layer_scale_init_value <= 0:
            raise ValueError(f"layer_scale_init_value must be positive or None, got {self.layer_scale_init_value}")
        check_probabilities(self, "drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob")

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return height_width(self.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """The patch grid at `image_size`."""
        height, width = self.image_size_2d
        return height // self.patch_size, width // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def num_prefix_tokens(self) -> int:
        """[CLS] plus register tokens, which come before the patch tokens."""
        return int(self.class_token) + self.num_register_tokens

    @property
    def fc_norm(self) -> bool:
        """Whether the norm is applied after pooling (see `use_fc_norm`)."""
        return self.pooling == "mean" if self.use_fc_norm is None else bool(self.use_fc_norm)

    @property
    def stage_names(self) -> list[str]:
        """The embedding output ("stem") and one name per block, matching `hidden_states`."""
        return ["stem"] + [f"stage{i}" for i in range(1, self.num_hidden_layers + 1)]


__all__ = ["VitConfig"]
