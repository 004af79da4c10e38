"""AdamW parameter groups (weight-decay exclusions, layer-wise learning-rate decay) and the cosine schedule.

Layer-wise LR decay (BEiT / MAE fine-tuning) needs each parameter's depth. It is found generically for any zoo model:
the model's transformer blocks are its `GradientCheckpointingLayer` modules (every zoo block subclasses it), numbered
1..N in module order; parameters before the first block (patch embedding, position embeddings) are layer 0; a
parameter between blocks (e.g. Swin's patch merging) belongs to the block before it; everything after the last block
(final norm, classifier) is layer N + 1. Layer i gets `lr * layer_decay ** (N + 1 - i)`. A model can override the
assignment by defining `get_layer_id(param_name) -> int` and `num_layers_for_decay() -> int`.

No weight decay on biases, norm weights, any 1-D parameter, position embeddings and relative-position tables (the
official Swin/ViT recipes), plus whatever the model lists in `no_weight_decay()` (timm's convention).

Per-parameter hints (the Hyena convention): a parameter listed by the model's `optim_hints()` (`{name: {"lr": ...,
"weight_decay": ...}}`) or carrying an `_optim` dict attribute gets that learning rate (absolute, times its layer
scale) and/or weight decay in a group of its own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_NO_DECAY_KEYWORDS = ("position_embedding", "pos_embed", "relative_position_bias_table", "absolute_pos_embed",
                      "cls_token", "mask_token")


def _block_modules(model: nn.Module) -> list[str]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    names = [name for name, module in model.named_modules() if isinstance(module, GradientCheckpointingLayer)]
    # keep the outermost blocks only (a block nested inside another block is part of it)
    return [n for n in names if not any(n.startswith(other + ".") for other in names if other != n)]


def layer_ids(model: nn.Module) -> tuple[dict[str, int], int]:
    """Map every trainable parameter name to its layer id (0 = stem ... N + 1 = head); returns (ids, N + 2)."""
    if hasattr(model, "get_layer_id") and hasattr(model, "num_layers_for_decay"):
        ids = {n: int(model.get_layer_id(n)) for n, p in model.named_parameters() if p.requires_grad}
        return ids, int(model.num_layers_for_decay())
    blocks = _block_modules(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    block_of = {}
    for name in names:
        for index, block in enumerate(blocks):
            if name.startswith(block + "."):
                block_of[name] = index + 1
                break
    positions = [i for i, n in enumerate(names) if n in block_of]
    if not positions:  # no recognisable blocks: a single group
        return {n: 0 for n in names}, 1
    last_block_position = max(positions)
    ids, current = {}, 0
    for i, name in enumerate(names):
        if name in block_of:
            current = block_of[name]
            ids[name] = current
        elif i > last_block_position:
            ids[name] = len(blocks) + 1
        else:
            ids[name] = current
    return ids, len(blocks) + 2


def _no_decay_names(model: nn.Module) -> set[str]:
    skip = set()
    if hasattr(model, "no_weight_decay"):
        skip = set(model.no_weight_decay())
    return skip


def optim_hints(model: nn.Module) -> dict[str, dict]:
    """Per-parameter optimiser settings: the model's `optim_hints()` and any parameter's `_optim` attribute."""
    hints = {name: dict(h) for name, h in (model.optim_hints() if hasattr(model, "optim_hints") else {}).items()}
    names = set()
    for name, param in model.named_parameters():
        names.add(name)
        if name not in hints and isinstance(getattr(param, "_optim", None), dict):
            hints[name] = dict(param._optim)
    unknown = sorted(set(hints) - names)
    if unknown:
        raise ValueError(f"optim_hints() names parameters the model does not have: {unknown[:5]}")
    for name, hint in hints.items():
        if set(hint) - {"lr", "weight_decay"}:
            raise ValueError(f"optimiser hint of {name} has unknown keys {sorted(set(hint) - {'lr', 'weight_decay'})}")
    return hints


def param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """AdamW parameter groups: (layer, decay / no decay, hint), each with its `lr` (and `lr_scale` for the
    schedule); parameters with an optimiser hint (see `optim_hints`) take its lr / weight decay."""
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    ids, num_layers = layer_ids(model) if layer_decay is not None else ({}, 1)
    skip = _no_decay_names(model)
    hints = optim_hints(model)
    groups: dict[tuple[int, bool, tuple], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = (param.ndim <= 1 or name.endswith(".bias") or any(k in name for k in _NO_DECAY_KEYWORDS)
                    or name in skip or any(name.endswith("." + s) for s in skip))
        layer = ids.get(name, 0)
        scale = layer_decay ** (num_layers - 1 - layer) if layer_decay is not None else 1.0
        hint = hints.get(name, {})
        key = (layer, no_decay, tuple(sorted(hint.items())))
        if key not in groups:
            groups[key] = {"params": [], "param_names": [],
                           "weight_decay": hint.get("weight_decay", 0.0 if no_decay else weight_decay),
                           "lr": hint.get("lr", lr) * scale, "lr_scale": scale, "layer_id": layer}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return [groups[k] for k in sorted(groups)]


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                    min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ~0 to each group's lr over `warmup_steps`, then cosine decay to `min_lr_ratio * lr` at
    `total_steps` (call `step()` once per optimizer step)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = max(0, min(int(warmup_steps), total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return min_lr_ratio + (1.0 - min_lr_ratio) * cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["cosine_schedule", "layer_ids", "optim_hints", "param_groups"]
