"""Configuration of Sparsifiner (Wei et al., "Sparsifiner: Learning Sparse Instance-Dependent Attention for
Efficient Vision Transformers", CVPR 2023, https://arxiv.org/abs/2303.13755). Official code:
https://github.com/lim142857/Sparsifiner (MIT; read, not copied).

`SparsifinerConfig` is a `VitConfig` (DeiT layout: [CLS], learned positions) plus the connectivity predictor of the
official `MaskPredictor` under the official yacs names (`SPAR.REDUCE_N_FACTOR`, `SPAR.REDUCE_C_FACTOR`,
`SPAR.ATTN_KEEP_RATE(_LIST)`, `SPAR.BASIS_THRESHOLD`, `SPAR.BASIS_COEF.TOPK/THRESHOLD`, `SPAR.SHARE_INOUT_PROJ`,
`LOSS.USE_ATTN_RECON`). Defaults are `experiments/sparsifiner_default_config.yaml` (Sparsifiner-S).
"""

import math

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig

ATTENTION_PATHS = ("auto", "sparse", "masked")


@strict
class SparsifinerConfig(VitConfig):
    r"""Sparsifiner hyper-parameters; the defaults are the official Sparsifiner-S predictor on ViT-B/16 sizes (the
    registered variants set the DeiT-S/B widths).

    attn_keep_rate: fraction of the N tokens (incl. [CLS]) each patch query attends to, one float or one per block;
        the per-query budget is `k = ceil(rate * N)` (official `attn_budget`). 1.0 = dense.
    attention_budget: an explicit `k` (int, or one per block) instead of `attn_keep_rate`; must lie in [1, N].
    reduce_n_factor: the predictor's token rank is `N // reduce_n_factor` (`proj_n`, `proj_back_n`: `(N, rank)`).
    reduce_c_factor: the predictor's channel rank is `head_dim // reduce_c_factor` (`proj_c_q`, `proj_c_k`).
    share_inout_proj: `proj_back_n` is `proj_n` (official `SHARE_INOUT_PROJ`).
    basis_threshold: basis entries with `|b| <= threshold` become 0 (the basis is `|proj_back_n|` thresholded).
    basis_coef_topk: keep the top-k basis coefficients per query (None: zero those <= `basis_coef_threshold`).
    attention_path: "sparse" computes only the k selected keys per query (real sparse compute), "masked" the official
        dense `-inf`-masked attention; "auto" = sparse in eval, masked in training (needed for the distillation loss).
    attention_reconstruction: training stage 1 of the official recipe (`LOSS.USE_ATTN_RECON`): in training mode the
        attention is dense and the predictor's raw low-rank approximation is returned for the reconstruction loss.
    attention_distillation_weight: weight of the official attention self-distillation loss (`ATTN_SELF_DISTILL`,
        MSE-sum of the approximation to the model's own dense attention) added to the classifier loss in training.
    """

    model_type = "zoo_sparsifiner"

    attn_keep_rate: float | int | list[float] = 0.25
    attention_budget: int | list[int] | None = None
    reduce_n_factor: int = 6
    reduce_c_factor: int = 2
    share_inout_proj: bool = False
    basis_threshold: float | int = 0.02
    basis_coef_topk: int | None = 8
    basis_coef_threshold: float | int = 0.05
    attention_path: str = "auto"
    attention_reconstruction: bool = False
    attention_distillation_weight: float | int = 0.002

    def __post_init__(self, **kwargs):
        for name in ("attn_keep_rate", "attention_budget"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        if not self.class_token or self.num_register_tokens:
            raise ValueError("Sparsifiner needs class_token=True and no register tokens (the [CLS] query attends "
                             "densely, every patch query sparsely)")
        tokens = self.num_tokens
        for name in ("reduce_n_factor", "reduce_c_factor"):
            if isinstance(getattr(self, name), bool) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if self.channel_rank < 1:
            raise ValueError(f"predictor channel rank head_dim // reduce_c_factor = {self.head_dim} // "
                             f"{self.reduce_c_factor} is < 1; lower reduce_c_factor")
        if self.token_rank < 1:
            raise ValueError(f"predictor token rank num_tokens // reduce_n_factor = {tokens} // {self.reduce_n_factor}"
                             f" is < 1; lower reduce_n_factor")
        if self.basis_coef_topk is not None and not 1 <= self.basis_coef_topk <= self.token_rank:
            raise ValueError(f"basis_coef_topk must lie in [1, token rank {self.token_rank}] or be None, got "
                             f"{self.basis_coef_topk}")
        rates = self._per_layer("attn_keep_rate")
        if any(isinstance(r, bool) or not 0 < r <= 1 for r in rates):
            raise ValueError(f"attn_keep_rate must lie in (0, 1], got {self.attn_keep_rate}")
        if self.attention_budget is not None:
            budgets = self._per_layer("attention_budget")
            if any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= tokens for b in budgets):
                raise ValueError(f"attention_budget (keys per query) must be ints in [1, N={tokens}] (N = patches + "
                                 f"[CLS] at image_size {self.image_size}), got {self.attention_budget}")
        if self.attention_path not in ATTENTION_PATHS:
            raise ValueError(f"attention_path must be one of {ATTENTION_PATHS}, got {self.attention_path!r}")
        if self.basis_threshold < 0 or self.basis_coef_threshold < 0:
            raise ValueError("basis_threshold and basis_coef_threshold must be >= 0")
        if self.attention_distillation_weight < 0:
            raise ValueError(f"attention_distillation_weight must be >= 0, got {self.attention_distillation_weight}")

    def _per_layer(self, name: str) -> list:
        value = getattr(self, name)
        if isinstance(value, list):
            if len(value) != self.num_hidden_layers:
                raise ValueError(f"{name} has {len(value)} entries, expected one per block ({self.num_hidden_layers})")
            return value
        return [value] * self.num_hidden_layers

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_tokens(self) -> int:
        """N at `image_size`: the patches plus [CLS] (the predictor's `proj_n` has one row per token)."""
        return self.num_patches + 1

    @property
    def token_rank(self) -> int:
        return self.num_tokens // self.reduce_n_factor

    @property
    def channel_rank(self) -> int:
        return self.head_dim // self.reduce_c_factor

    def budget(self, layer: int, num_tokens: int | None = None) -> int:
        """Keys per patch query in block `layer` for `num_tokens` tokens (default: at `image_size`)."""
        num_tokens = self.num_tokens if num_tokens is None else num_tokens
        if self.attention_budget is not None:
            budget = self._per_layer("attention_budget")[layer]
            if budget > num_tokens:
                raise ValueError(f"attention_budget {budget} exceeds the {num_tokens} tokens of this input")
            return budget
        return min(num_tokens, math.ceil(self._per_layer("attn_keep_rate")[layer] * num_tokens))


__all__ = ["SparsifinerConfig"]
