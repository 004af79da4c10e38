"""Configuration of the zoo's Hyena N-D vision transformer (Zimerman & Wolf, AISTATS 2024,
https://arxiv.org/abs/2309.13600; official code https://github.com/Itamarzimm/HyenaND).

Field names follow the zoo ViT / transformers' `ViTConfig` for the shared parts; the Hyena fields follow the
official `main.py` arguments (`--hyena_order`, `--hyena_filter_order`, `--directional_mode`, `--use_cls_token`,
`--hyena2d_sqrt_decay`) and `hyena2d.py`'s keyword arguments.
"""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

from ...configuration_utils import check_positive, check_probabilities

# canonical mixer pattern -> the official `--method` that builds it
MIXER_PATTERNS = {
    "all_hyena": "hyena2d",
    "hyena_then_attention": "hyena2dattn",
    "attention_then_hyena": "attnhyena2d",
    "alternating": "onebyone",
    "all_attention": "attention",
}
_PATTERN_ALIASES = {official: ours for ours, official in MIXER_PATTERNS.items()}
DIRECTIONAL_MODES = ("seq", "standard")
GLOBAL_POOLS = ("token", "avg")


@strict
class HyenaNdConfig(PreTrainedConfig):
    r"""Hyena N-D hyper-parameters; the defaults are the all-Hyena-2D DeiT-Tiny/16 at 224 px of the paper.

    mixer_pattern: which blocks mix tokens with the 2-D Hyena operator and which with self-attention, as the
        official `--method`: "all_hyena" (`hyena2d`); "hyena_then_attention" (`hyena2dattn`: blocks
        0..depth//2 Hyena, the rest attention); "attention_then_hyena" (`attnhyena2d`: the reverse);
        "alternating" (`onebyone`: Hyena on even blocks); "all_attention" (`attention`, the DeiT baseline). The
        official names are accepted too.
    directional_mode: "seq" flips the grid for the first long convolution of every even block (so information
        also flows bottom-right to top-left); "standard" never flips.
    hyena_order: depth N of the Hyena recursion (N - 1 long convolutions per block).
    filter_order: width of the implicit filter MLP; filter_emb_dim: size of its positional embedding per axis
        (odd); filter_num_inner_mlps: hidden layers of that MLP; filter_sin_freq: initial sine frequency.
    fast_decay_pct / slow_decay_pct / decay_target / sqrt_decay: the exponential window on the filters.
    use_cls_token: a class token, as in DeiT. Only possible without Hyena blocks (a 2-D convolution cannot mix it).
    global_pool: how the classifier reads the tokens: "token" takes token 0, which is what the official code does
        (with `use_cls_token=False` that is the top-left patch); "avg" averages all tokens.
    use_optim_hints / filter_lr / filter_weight_decay / pos_emb_lr: the per-parameter optimiser settings the
        official layers attach (Hyena's convention: filter MLP lr 1e-3 without weight decay, positional embedding
        lr 1e-5). The zoo's training loop honours them when `use_optim_hints` is True. (The official training
        script's timm 0.4.12 optimiser ignores them; set False to train as it did.)
    """

    model_type = "zoo_hyena_nd"

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 192
    num_hidden_layers: int = 12
    num_attention_heads: int = 3
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.1
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    use_cls_token: bool = False
    global_pool: str = "token"
    mixer_pattern: str = "all_hyena"
    directional_mode: str = "seq"
    hyena_order: int = 2
    filter_order: int = 64
    filter_emb_dim: int = 3
    filter_num_inner_mlps: int = 2
    filter_sin_freq: float | int = 1.0
    fast_decay_pct: float | int = 0.3
    slow_decay_pct: float | int = 1.5
    decay_target: float = 1e-2
    sqrt_decay: bool = False
    short_filter_size: int = 3
    use_optim_hints: bool = True
    filter_lr: float | None = 1e-3
    filter_weight_decay: float | None = 0.0
    pos_emb_lr: float | None = 1e-5

    def __post_init__(self, **kwargs):
        self.mixer_pattern = _PATTERN_ALIASES.get(self.mixer_pattern, self.mixer_pattern)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent hyper-parameters with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        check_positive(self, "image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
                        "num_attention_heads", "filter_order")
        if self.filter_num_inner_mlps < 0:
            raise ValueError(f"filter_num_inner_mlps must be >= 0, got {self.filter_num_inner_mlps}")
        if self.mixer_pattern not in MIXER_PATTERNS:
            raise ValueError(f"mixer_pattern must be one of {sorted(MIXER_PATTERNS)} (or the official names "
                             f"{sorted(_PATTERN_ALIASES)}), got {self.mixer_pattern!r}")
        if self.directional_mode not in DIRECTIONAL_MODES:
            raise ValueError(f"directional_mode must be one of {DIRECTIONAL_MODES}, got {self.directional_mode!r} "
                             f"(the official 'parallel', '4dir' and '4dirp' modes are not implemented)")
        if self.global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {self.global_pool!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.image_size < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than one patch ({self.patch_size})")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size} (the "
                             f"Hyena filters and the position table are built for a whole patch grid)")
        if self.hyena_order < 2:
            raise ValueError(
                f"hyena_order must be >= 2 (order - 1 long convolutions per block), got {self.hyena_order}")
        if self.filter_emb_dim < 3 or self.filter_emb_dim % 2 == 0:
            raise ValueError(f"filter_emb_dim must be odd and >= 3 (time, then cosine/sine pairs), got "
                             f"{self.filter_emb_dim}")
        if self.short_filter_size < 1 or self.short_filter_size % 2 == 0:
            raise ValueError(f"short_filter_size must be a positive odd int, got {self.short_filter_size}")
        if not 0.0 < self.decay_target < 1.0:
            raise ValueError(f"decay_target must be in (0, 1), got {self.decay_target}")
        if self.fast_decay_pct <= 0 or self.slow_decay_pct <= 0:
            raise ValueError("fast_decay_pct and slow_decay_pct must be positive")
        if self.use_cls_token and "hyena" in self.block_mixers():
            raise ValueError(
                f"use_cls_token=True needs mixer_pattern='all_attention': a Hyena block ({self.mixer_pattern}) mixes "
                f"tokens with 2-D convolutions over the patch grid and cannot carry a class token (the official "
                f"code fails on the non-square token count)")
        check_probabilities(self, "drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob")
        for name in ("filter_lr", "filter_weight_decay", "pos_emb_lr"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}")

    @property
    def image_size_2d(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    @property
    def stage_names(self) -> list[str]:
        """The embedding output ("stem") and one name per block, matching `hidden_states`."""
        return ["stem"] + [f"stage{i}" for i in range(1, self.num_hidden_layers + 1)]

    @property
    def grid_size(self) -> int:
        """Side of the patch grid at `image_size` (the Hyena filters' `l_max`)."""
        return self.image_size // self.patch_size

    def block_mixers(self) -> list[str]:
        """"hyena" or "attention" for each block (the official `Block` rule for `mixer_pattern`)."""
        depth, half = self.num_hidden_layers, self.num_hidden_layers // 2
        rule = {
            "all_hyena": lambda i: True,
            "hyena_then_attention": lambda i: i <= half,
            "attention_then_hyena": lambda i: i > half,
            "alternating": lambda i: i % 2 == 0,
            "all_attention": lambda i: False,
        }[self.mixer_pattern]
        return ["hyena" if rule(i) else "attention" for i in range(depth)]

    def block_directions(self) -> list[str | None]:
        """The directional mode of each Hyena block (None for attention blocks): with "seq", even blocks flip."""
        return [None if mixer != "hyena" else ("seq" if self.directional_mode == "seq" and i % 2 == 0 else "standard")
                for i, mixer in enumerate(self.block_mixers())]


__all__ = ["HyenaNdConfig", "MIXER_PATTERNS"]
