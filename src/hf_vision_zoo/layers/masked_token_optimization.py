"""Masked token optimization (MTO), the zoo's implementation of "Emerging Property of Masked Token for Effective
Pre-training" (Choi, Lee, Joung, Park, Kim and Min, ECCV 2024, https://arxiv.org/abs/2404.08330).

No official code was available to us and the PDF could not be read here, so this module implements only what the
public descriptions state, plus choices of ours that are named as such (the project notes on paper 41, METHODS.md §41).

Stated by the paper's public descriptions (abstract, co-author page §2-§3, sciencestack summary):
- a mask token should have *spatial randomness*, *substitutional consistency* (one shared learned embedding) and
  *data singularity* / *distinctiveness* (a vector unlikely to occur among real patch embeddings); MTO mainly
  enforces the last one;
- *weight recalibration*: masked tokens carry no image content, so they are excluded from the weighted aggregation
  (attention) that forms the visible tokens' representations;
- the singularity constraint is enforced with a strength that depends on the layer depth;
- MTO plugs into any MIM method that feeds mask tokens through a transformer; the MIM objective is unchanged.

Not found, hence zoo choices (each a parameter, so another reading can be configured):
1. Recalibration operation: the attention of a visible query (prefix tokens included) to a masked key is multiplied
   by `weight` in [0, 1] and the row renormalised, i.e. `log(weight)` is added to those attention logits
   (`recalibration_bias`). `weight=0` (the default of the zoo's `mto` model) is the stated exclusion; `weight=1` is
   the baseline exactly. Masked queries still attend to every token (they must gather context to be
   reconstructed). Applied in every block. Why: a factor on the attention weights is the smallest generalisation
   of "excluded" that contains both the stated exclusion and the baseline, so the switch can be ablated.
2. Data-singularity loss (`singularity_loss`): at the embedding output and after every block, for each masked token
   the largest cosine similarity to a visible patch token of the same image, clamped at 0, averaged over masked
   tokens and images; the per-depth terms are weighted by a depth schedule (`singularity_layer_weights`):
   "linear_decay" (default: weight 1 - l / (L + 1) at depth l = 0..L, strongest at the input where the mask
   embedding must stand out, weakest at the top where masked tokens have legitimately absorbed context),
   "uniform", or "input" (embedding output only); the weights are normalised to sum to 1. Why: "unlikely to
   occur among real patch embeddings" is read as "far from the nearest real token" (cosine, scale-free); the
   decay with depth is one monotone schedule consistent with the stated depth dependence. Off by default
   (`mto_singularity_weight=0`) since the paper's form is unknown.
3. The paper's three losses L_spa, L_e, L_r and its entropy-based heterogeneity measure were not found; they are NOT
   implemented. `masked_attention_mass` is a diagnostic (the share of visible queries' attention on masked keys),
   not the paper's measure.

Reusable pieces: `recalibration_bias` (an additive attention mask any `layers.TransformerBlock` accepts),
`run_blocks` (a block stack with that mask), `singularity_loss`, and `MaskedTokenOptimizationMixin`, which reads the
config fields checked by `check_mto_config` (`use_mto`, `mto_recalibration_weight`, `mto_singularity_weight`,
`mto_singularity_schedule`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

SINGULARITY_SCHEDULES = ("linear_decay", "uniform", "input")


def _check_mask(mask: torch.Tensor, num_patches: int | None = None) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be a (batch, num_patches) tensor, True = masked; got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if num_patches is not None and mask.shape[1] != num_patches:
        raise ValueError(f"mask has {mask.shape[1]} entries per image but there are {num_patches} patch tokens")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or not ((mask == 0) | (mask == 1)).all():
            raise TypeError(f"mask must be a bool tensor (True = masked), got {mask.dtype}")
        mask = mask.bool()
    return mask


def check_recalibration_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"the MTO recalibration weight must be a number in [0, 1], got {weight!r}")
    return float(weight)


def recalibration_bias(mask: torch.Tensor, num_prefix_tokens: int, weight: float = 0.0,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """Additive attention mask `(B, 1, P + N, P + N)` that scales the attention of visible queries (prefix tokens
    and unmasked patches) to masked keys by `weight` (0 = excluded), for tokens ordered [prefix, patches].
    Returns None for `weight == 1` (no change)."""
    mask = _check_mask(mask)
    weight = check_recalibration_weight(weight)
    if weight == 1.0:
        return None
    batch = mask.shape[0]
    keys = torch.cat([mask.new_zeros(batch, num_prefix_tokens), mask], dim=1)  # (B, T) True = masked key
    queries = ~keys
    value = torch.finfo(dtype).min if weight == 0.0 else math.log(weight)
    bias = torch.zeros(batch, 1, keys.shape[1], keys.shape[1], dtype=dtype, device=mask.device)
    return bias.masked_fill(queries[:, None, :, None] & keys[:, None, None, :], value)


def recalibrate_attention(probs: torch.Tensor, mask: torch.Tensor, num_prefix_tokens: int,
                          weight: float) -> torch.Tensor:
    """The recalibration written on attention probabilities `(B, H, T, T)`: for visible queries, masked keys'
    weights times `weight`, then each row renormalised (what `recalibration_bias` does to the softmax)."""
    mask = _check_mask(mask)
    keys = torch.cat([mask.new_zeros(mask.shape[0], num_prefix_tokens), mask], dim=1)
    pairs = (~keys)[:, None, :, None] & keys[:, None, None, :]  # (B, 1, T, T) visible query, masked key
    scaled = torch.where(pairs, probs * float(weight), probs)
    return scaled / scaled.sum(-1, keepdim=True)


def masked_attention_mass(attentions: torch.Tensor, mask: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """`(B,)` mean (over heads and visible queries) of the attention mass that visible tokens put on masked keys."""
    mask = _check_mask(mask)
    keys = torch.cat([mask.new_zeros(mask.shape[0], num_prefix_tokens), mask], dim=1)
    mass = (attentions * keys[:, None, None, :]).sum(-1)  # (B, H, T)
    visible = (~keys)[:, None, :].to(mass.dtype)
    return (mass * visible).sum((1, 2)) / (visible.sum((1, 2)) * attentions.shape[1])


def singularity_layer_weights(num_states: int, schedule: str = "linear_decay") -> list[float]:
    """Normalised weights of the `num_states` depths (embedding output, then every block) for `singularity_loss`."""
    if schedule not in SINGULARITY_SCHEDULES:
        raise ValueError(f"singularity schedule must be one of {SINGULARITY_SCHEDULES}, got {schedule!r}")
    if num_states < 1:
        raise ValueError(f"need at least one hidden state, got {num_states}")
    if schedule == "input":
        raw = [1.0] + [0.0] * (num_states - 1)
    elif schedule == "uniform":
        raw = [1.0] * num_states
    else:
        raw = [1.0 - depth / num_states for depth in range(num_states)]
    total = sum(raw)
    return [w / total for w in raw]


def singularity_term(hidden: torch.Tensor, mask: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """One depth's term: mean over images and masked tokens of `max(0, max_j cos(masked_i, visible_j))`."""
    patches = F.normalize(hidden[:, num_prefix_tokens:].float(), dim=-1)
    cosine = patches @ patches.transpose(1, 2)  # (B, N, N)
    pair = mask[:, :, None] & ~mask[:, None, :]  # masked query i, visible j
    closest = cosine.masked_fill(~pair, -2.0).amax(-1).clamp_min(0.0)  # (B, N); 0 where no pair
    masked = mask.to(closest.dtype)
    valid = masked * (~mask).any(1, keepdim=True).to(closest.dtype)
    return (closest * valid).sum() / valid.sum().clamp_min(1.0)


def singularity_loss(hidden_states, mask: torch.Tensor, num_prefix_tokens: int,
                     schedule: str = "linear_decay") -> torch.Tensor:
    """The zoo's data-singularity loss (module doc, choice 2) over `hidden_states` = (embedding output, block 1,
    ..., block L), each `(B, P + N, C)` with every patch token present."""
    mask = _check_mask(mask, hidden_states[0].shape[1] - num_prefix_tokens)
    weights = singularity_layer_weights(len(hidden_states), schedule)
    loss = hidden_states[0].new_zeros((), dtype=torch.float32)
    for weight, hidden in zip(weights, hidden_states):
        if weight > 0:
            loss = loss + weight * singularity_term(hidden, mask, num_prefix_tokens)
    return loss


def run_blocks(blocks: nn.ModuleList, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
               output_hidden_states: bool = False, output_attentions: bool = False):
    """Run `layers.TransformerBlock`s with one additive `attention_mask`; returns the output, the hidden states
    (input, then every block; None unless asked) and the attentions (None unless asked)."""
    all_hidden = [hidden] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for block in blocks:
        hidden, probs = block(hidden, attention_mask, output_attentions)
        if output_hidden_states:
            all_hidden.append(hidden)
        if output_attentions:
            attentions.append(probs)
    return hidden, (tuple(all_hidden) if output_hidden_states else None), (
        tuple(attentions) if output_attentions else None)


def check_mto_config(config) -> None:
    """Validate the MTO fields of a config (call from `validate_architecture`)."""
    if not isinstance(config.use_mto, bool):
        raise ValueError(f"use_mto must be a bool, got {config.use_mto!r}")
    check_recalibration_weight(config.mto_recalibration_weight)
    if isinstance(config.mto_singularity_weight, bool) or config.mto_singularity_weight < 0:
        raise ValueError(f"mto_singularity_weight must be >= 0, got {config.mto_singularity_weight!r}")
    if config.mto_singularity_schedule not in SINGULARITY_SCHEDULES:
        raise ValueError(f"mto_singularity_schedule must be one of {SINGULARITY_SCHEDULES}, "
                         f"got {config.mto_singularity_schedule!r}")


class MaskedTokenOptimizationMixin:
    """MTO for a `*ForPreTraining` model whose transformer sees mask tokens. The config needs `use_mto`,
    `mto_recalibration_weight`, `mto_singularity_weight`, `mto_singularity_schedule` (see `check_mto_config`).
    With `use_mto=False` both hooks are no-ops (None and 0)."""

    def mto_attention_mask(self, mask: torch.Tensor, num_prefix_tokens: int,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """The additive mask to pass to every block that sees the mask tokens (None = plain attention)."""
        if not self.config.use_mto:
            return None
        return recalibration_bias(mask, num_prefix_tokens, self.config.mto_recalibration_weight, dtype)

    def mto_loss(self, hidden_states, mask: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor | None:
        """`mto_singularity_weight * singularity_loss` (None when MTO or the loss is off)."""
        if not self.config.use_mto or not self.config.mto_singularity_weight:
            return None
        if hidden_states is None:
            raise ValueError("the MTO singularity loss needs the hidden states of every block")
        return self.config.mto_singularity_weight * singularity_loss(
            hidden_states, mask, num_prefix_tokens, self.config.mto_singularity_schedule)


__all__ = ["recalibration_bias", "recalibrate_attention", "masked_attention_mass", "singularity_layer_weights",
           "singularity_term", "singularity_loss", "run_blocks", "check_mto_config", "check_recalibration_weight",
           "MaskedTokenOptimizationMixin", "SINGULARITY_SCHEDULES"]
