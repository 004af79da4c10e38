"""Hyena N-D weights from the official code (Itamarzimm/HyenaND, the vendored timm `VisionTransformer(args=...)`)
-> the zoo's `HyenaNdForImageClassification` / `HyenaNdModel`.

No checkpoints were released; this converts what the official `main.py` saves (`{"model": state_dict, ...}`, unwrapped
by the loader) or `model.state_dict()`. Renames: `patch_embed`/`pos_embed`/`cls_token` -> `hyena_nd.embeddings.*`,
`norm` -> `hyena_nd.layernorm`, `head` -> `classifier`; in a Hyena block `attn.*` -> `mixer.*`, with the filter MLP
`implicit_filter.{0,2,4,...}` -> `filter_fn.mlp.{0,1,2,...}` and the shared sine `implicit_filter.{1,3,5}.freq`
(one tensor listed three times) -> `filter_fn.sin.freq`. The buffers `filter_fn.pos_emb.t` and
`filter_fn.modulation.Xdeltas/Ydeltas` are rebuilt from the config; the converter checks that the checkpoint's
values are the ones the config gives, so a checkpoint made with other decay settings fails loudly.
Pure functions: `convert_state_dict(state_dict, config, source)`, `infer_config(state_dict, source)`.
"""

import math
import re

import torch

from ..layers.hyena import hyena_decay_rates, hyena_positional_embedding
from ..models.hyena_nd.configuration_hyena_nd import HyenaNdConfig
from .common import ConversionError, check_source

SOURCES = ("official",)
PREFIX = "hyena_nd."
_HYENA_MARKER = "attn.in_proj.weight"


def _block_kinds(state_dict: dict) -> dict[int, str]:
    """Block index -> "hyena" / "attention", read off the official keys."""
    kinds = {}
    for key in state_dict:
        match = re.match(r"blocks\.(\d+)\.attn\.(in_proj|qkv)\.weight$", key)
        if match:
            kinds[int(match.group(1))] = "hyena" if match.group(2) == "in_proj" else "attention"
    return kinds


def _check_is_hyena_nd(state_dict: dict, config: HyenaNdConfig, source: str) -> None:
    if "pos_embed" not in state_dict or "patch_embed.proj.weight" not in state_dict or not _block_kinds(state_dict):
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"This does not look like an official Hyena N-D (vendored timm VisionTransformer) checkpoint: no "
            f"pos_embed / patch_embed.proj.weight / blocks.*.attn keys; first keys: {sample}. Check --source "
            f"({source}) and that the file holds a Hyena N-D model.")
    kinds = _block_kinds(state_dict)
    expected = config.block_mixers()
    found = [kinds.get(i, "missing") for i in range(max(len(expected), max(kinds) + 1))]
    if found != expected:
        raise ConversionError(
            f"The checkpoint's blocks are {found} but the config ({config.num_hidden_layers} blocks, mixer_pattern="
            f"{config.mixer_pattern!r}) expects {expected}; pass the matching --variant/--config or mixer_pattern")


def _check_buffer(key: str, value: torch.Tensor, expected: torch.Tensor) -> None:
    if value.shape != expected.shape or not torch.allclose(value.float(), expected, atol=1e-6, rtol=1e-5):
        raise ConversionError(
            f"{key} holds other values than the config gives (shape {tuple(value.shape)} vs {tuple(expected.shape)}); "
            f"the checkpoint was made with other filter settings (grid size, decay_target, fast/slow_decay_pct)")


def _rename_filter(block: str, rest: str, value: torch.Tensor, config: HyenaNdConfig, seen: dict) -> str | None:
    """`rest` is the part after `blocks.<i>.attn.filter_fn.`; returns the zoo key or None (dropped after checks)."""
    channels = config.hidden_size * (config.hyena_order - 1)
    if rest == "pos_emb.t":
        _check_buffer(f"{block}.attn.filter_fn.pos_emb.t", value,
                      hyena_positional_embedding(config.grid_size, config.filter_emb_dim)[1])
        return None
    if rest in ("modulation.Xdeltas", "modulation.Ydeltas"):
        _check_buffer(f"{block}.attn.filter_fn.{rest}", value,
                      hyena_decay_rates(channels, config.fast_decay_pct, config.slow_decay_pct, config.decay_target))
        return None
    match = re.match(r"implicit_filter\.(\d+)\.(weight|bias|freq)$", rest)
    if match:
        index, name = int(match.group(1)), match.group(2)
        if name == "freq":  # the one shared Sin module, listed after every hidden linear layer
            if block in seen:
                if not torch.equal(seen[block], value):
                    raise ConversionError(f"{block}.attn.filter_fn.implicit_filter.{index}.freq differs from the "
                                          f"first sine frequency; the official filter shares one Sin module")
                return None
            seen[block] = value
            return "filter_fn.sin.freq"
        if index % 2:
            raise ConversionError(f"unexpected {name} at implicit_filter.{index} (odd entries are activations)")
        return f"filter_fn.mlp.{index // 2}.{name}"
    return f"filter_fn.{rest}"  # bias, pos_emb.z


def convert_state_dict(state_dict: dict, config: HyenaNdConfig, source: str) -> dict:
    """Rename an official Hyena N-D state dict to the zoo's `HyenaNdForImageClassification` layout."""
    check_source(source, SOURCES)
    _check_is_hyena_nd(state_dict, config, source)
    kinds = _block_kinds(state_dict)
    out, seen_freq = {}, {}
    for key, value in state_dict.items():
        new_key = key
        if key.startswith("patch_embed."):
            new_key = PREFIX + "embeddings." + key
        elif key == "pos_embed":
            new_key = PREFIX + "embeddings.position_embeddings"
        elif key == "cls_token":
            new_key = PREFIX + "embeddings.cls_token"
        elif key.startswith("norm."):
            new_key = PREFIX + "layernorm." + key[len("norm."):]
        elif key.startswith("head."):
            new_key = "classifier." + key[len("head."):]
        else:
            match = re.match(r"(blocks\.(\d+))\.attn\.(.+)$", key)
            if match and kinds.get(int(match.group(2))) == "hyena":
                block, rest = match.group(1), match.group(3)
                if rest.startswith("filter_fn."):
                    inner = _rename_filter(block, rest[len("filter_fn."):], value, config, seen_freq)
                    if inner is None:
                        continue
                    new_key = f"{PREFIX}{block}.mixer.{inner}"
                else:
                    new_key = f"{PREFIX}{block}.mixer.{rest}"
            elif key.startswith("blocks."):
                new_key = PREFIX + key
        out[new_key] = value
    return out


def infer_config(state_dict: dict, source: str, **overrides) -> HyenaNdConfig:
    """Read patch size, width, depth, mixer pattern, Hyena order, filter widths, class token and labels off the shapes.
    Not in the weights: the heads of attention blocks (DeiT's rule width / 64 is used), `directional_mode` ("seq",
    the paper's) and `sqrt_decay` (False); pass them as overrides if the checkpoint used others."""
    check_source(source, SOURCES)
    kinds = _block_kinds(state_dict)
    if "patch_embed.proj.weight" not in state_dict or "pos_embed" not in state_dict or not kinds:
        raise ConversionError("not an official Hyena N-D checkpoint (no patch_embed / pos_embed / blocks.*.attn keys)")
    proj = state_dict["patch_embed.proj.weight"]
    hidden, channels, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    use_cls = "cls_token" in state_dict
    tokens = state_dict["pos_embed"].shape[1] - int(use_cls)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ConversionError(f"pos_embed covers {tokens} patches, not a square grid")
    depth = max(kinds) + 1
    mixers = [kinds.get(i) for i in range(depth)]
    kwargs = dict(image_size=grid * patch, patch_size=patch, num_channels=channels, hidden_size=hidden,
                  num_hidden_layers=depth, num_attention_heads=max(1, hidden // 64), use_cls_token=use_cls,
                  qkv_bias=any(k.endswith("attn.qkv.bias") for k in state_dict) or "attention" not in mixers,
                  mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / hidden,
                  num_labels=state_dict["head.weight"].shape[0] if "head.weight" in state_dict else 0)
    hyena = [i for i, kind in enumerate(mixers) if kind == "hyena"]
    if hyena:
        block = f"blocks.{hyena[0]}.attn."
        kwargs["hyena_order"] = state_dict[block + "in_proj.weight"].shape[0] // hidden - 1
        first = state_dict[block + "filter_fn.implicit_filter.0.weight"]
        kwargs["filter_order"], kwargs["filter_emb_dim"] = first.shape[0], first.shape[1] // 2
        linears = {int(m.group(1)) for k in state_dict
                   if (m := re.match(rf"blocks\.{hyena[0]}\.attn\.filter_fn\.implicit_filter\.(\d+)\.weight$", k))}
        kwargs["filter_num_inner_mlps"] = len(linears) - 2
        kwargs["short_filter_size"] = state_dict[block + "short_filter.weight"].shape[-1]
    kwargs["mixer_pattern"] = next(
        (pattern for pattern in ("all_hyena", "hyena_then_attention", "attention_then_hyena", "alternating",
                                 "all_attention")
         if HyenaNdConfig(num_hidden_layers=depth, mixer_pattern=pattern).block_mixers() == mixers), None)
    if kwargs["mixer_pattern"] is None:
        raise ConversionError(f"the checkpoint's blocks {mixers} follow none of the official mixer patterns")
    kwargs.update(overrides)
    return HyenaNdConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> HyenaNdConfig:
    raise ConversionError("transformers has no Hyena N-D model; convert from --source official")


def image_processor_settings(config: HyenaNdConfig) -> dict:
    """The official eval transform at 224 px (short side 256, centre crop); other sizes resize straight to size."""
    if config.image_size == 224:
        return {}
    return {"size": {"height": config.image_size, "width": config.image_size}, "do_center_crop": False}
