"""Swin weights from the official repo, timm or transformers -> the zoo's `SwinForImageClassification` / `SwinBackbone`.

Pure functions: `convert_state_dict(state_dict, config, source)` renames (and, for transformers, fuses q/k/v);
`infer_config(state_dict, source)` reads the hyper-parameters off the tensor shapes.
"""

import re

import torch

from ..models.swin.configuration_swin import SwinConfig
from .common import ConversionError, check_source

SOURCES = ("official", "timm", "transformers")
_BUFFERS = ("relative_position_index", "attn_mask")


def _rename_official_or_timm(key: str, source: str) -> str | None:
    if key.endswith(_BUFFERS):
        return None
    if key.startswith("patch_embed."):
        return "swin.embeddings." + key
    if key == "absolute_pos_embed":
        return "swin.embeddings.position_embeddings"
    match = re.match(r"layers\.(\d+)\.downsample\.(.+)", key)
    if match:  # the official code merges at the end of stage i, timm at the start of stage i + 1
        stage = int(match.group(1)) - (1 if source == "timm" else 0)
        return f"swin.stages.{stage}.downsample.{match.group(2)}"
    if key.startswith("layers."):
        return "swin.stages." + key[len("layers."):]
    if key.startswith("norm."):
        return "swin.layernorm." + key[len("norm."):]
    if key.startswith("head.fc."):
        return "classifier." + key[len("head.fc."):]
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    return key  # left for the caller to report as unexpected


# transformers names (v5 in memory, v4 / v5-on-disk) -> ours, inside a block
_TRANSFORMERS_BLOCK = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.o_proj": "attn.proj", "attention.output.dense": "attn.proj",
    "attention.relative_position_bias.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.self.relative_position_bias_table": "attn.relative_position_bias_table",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
_QKV = {"attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
        "attention.self.query": 0, "attention.self.key": 1, "attention.self.value": 2}


def _convert_transformers(state_dict: dict) -> dict:
    out, qkv_parts = {}, {}
    for key, value in state_dict.items():
        if key.endswith(_BUFFERS):
            continue
        if key.startswith(("embeddings.", "encoder.", "layernorm.")):
            key = "swin." + key  # a bare SwinModel checkpoint
        key = key.replace("swin.embeddings.patch_embeddings.projection.", "swin.embeddings.patch_embed.proj.")
        key = key.replace("swin.embeddings.norm.", "swin.embeddings.patch_embed.norm.")
        key = re.sub(r"^swin\.encoder\.layers\.", "swin.stages.", key)
        match = re.match(r"(swin\.stages\.\d+\.blocks\.\d+)\.(.+)$", key)
        if match:
            prefix, rest = match.groups()
            inner, _, suffix = rest.rpartition(".")
            if inner in _QKV:
                qkv_parts.setdefault((prefix, suffix), [None] * 3)[_QKV[inner]] = value
                continue
            if rest in _TRANSFORMERS_BLOCK:  # the bias tables: the whole tail is the name
                key = f"{prefix}.{_TRANSFORMERS_BLOCK[rest]}"
            elif inner in _TRANSFORMERS_BLOCK:
                key = f"{prefix}.{_TRANSFORMERS_BLOCK[inner]}.{suffix}"
        out[key] = value
    for (prefix, suffix), parts in qkv_parts.items():
        if any(p is None for p in parts):
            raise ConversionError(f"{prefix}: checkpoint has only some of the query/key/value {suffix}s")
        out[f"{prefix}.attn.qkv.{suffix}"] = torch.cat(parts, dim=0)
    return out


def convert_state_dict(state_dict: dict, config: SwinConfig, source: str) -> dict:
    """Rename a Swin state dict of `source` to the zoo's key layout (zero copies except the q/k/v fusion)."""
    check_source(source, SOURCES)
    _check_is_swin(state_dict, source)
    if source == "transformers":
        out = _convert_transformers(state_dict)
    else:
        out = {}
        for key, value in state_dict.items():
            new_key = _rename_official_or_timm(key, source)
            if new_key is not None:
                out[new_key] = value
    pos = out.get("swin.embeddings.position_embeddings")
    if pos is not None and pos.ndim == 4:  # (1, H, W, C) layouts
        out["swin.embeddings.position_embeddings"] = pos.flatten(1, 2)
    return out


def _check_is_swin(state_dict: dict, source: str) -> None:
    marker = "relative_position_bias_table"
    if not any(marker in key for key in state_dict):
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"This does not look like a Swin checkpoint (no '{marker}' keys); first keys: {sample}. "
            f"Check --source ({source}) and that the file holds a Swin Transformer."
        )
    looks_transformers = any(k.startswith(("swin.", "embeddings.patch_embeddings")) for k in state_dict)
    if (source == "transformers") != looks_transformers:
        raise ConversionError(
            f"The keys look like a {'transformers' if looks_transformers else 'official/timm'} Swin checkpoint, "
            f"not source={source!r}; pass the matching --source"
        )


def infer_config(state_dict: dict, source: str, image_size: int = 224, **overrides) -> SwinConfig:
    """Read embed_dim, depths, heads, window, patch size, MLP ratio, qkv bias, ape and labels off the shapes."""
    converted = convert_state_dict(state_dict, SwinConfig(), source)
    proj = converted["swin.embeddings.patch_embed.proj.weight"]
    depths, heads = [], []
    stage = 0
    while any(k.startswith(f"swin.stages.{stage}.blocks.") for k in converted):
        blocks = {int(k.split(".")[4]) for k in converted if k.startswith(f"swin.stages.{stage}.blocks.")}
        depths.append(max(blocks) + 1)
        heads.append(converted[f"swin.stages.{stage}.blocks.0.attn.relative_position_bias_table"].shape[1])
        stage += 1
    # stage 1 keeps the configured window unless the map was clamped, so read the table of stage 0
    table_len = converted["swin.stages.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    window = (int(round(table_len**0.5)) + 1) // 2
    embed_dim = proj.shape[0]
    fc1 = converted["swin.stages.0.blocks.0.mlp.fc1.weight"]
    head = converted.get("classifier.weight")
    kwargs = dict(
        image_size=image_size, patch_size=proj.shape[-1], num_channels=proj.shape[1], embed_dim=embed_dim,
        depths=depths, num_heads=heads, window_size=window, mlp_ratio=fc1.shape[0] / embed_dim,
        qkv_bias="swin.stages.0.blocks.0.attn.qkv.bias" in converted,
        use_absolute_embeddings="swin.embeddings.position_embeddings" in converted,
        patch_norm="swin.embeddings.patch_embed.norm.weight" in converted,
        num_labels=head.shape[0] if head is not None else 0,
    )
    kwargs.update(overrides)
    return SwinConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> SwinConfig:
    """A transformers `SwinConfig` (as a dict, e.g. its config.json) -> the zoo's config; field names are shared."""
    fields = set(SwinConfig.__dataclass_fields__) - {"_out_features", "_out_indices"}
    kwargs = {k: v for k, v in transformers_config.items() if k in fields}
    for key in ("id2label", "label2id", "out_features", "out_indices"):
        if key in transformers_config:
            kwargs[key] = transformers_config[key]
    if "id2label" in kwargs:
        kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
    kwargs.update(overrides)
    return SwinConfig(**kwargs)
