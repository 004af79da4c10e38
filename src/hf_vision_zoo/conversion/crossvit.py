"""CrossViT weights from the official IBM/CrossViT release or timm -> the zoo's `CrossVitForImageClassification`.

The two formats differ only in the class tokens and position embeddings (`cls_token.0` / `pos_embed.0` officially,
`cls_token_0` / `pos_embed_0` in timm). `convert_state_dict` renames keys and fuses each cross-attention's `wk` and
`wv` into one `kv` weight; `infer_config` reads the hyper-parameters off the tensor shapes.
"""

import math
import re

import torch

from ..models.crossvit.configuration_crossvit import CrossVitConfig
from ..models.crossvit.image_processing_crossvit import eval_preprocessing
from .common import ConversionError, check_source

SOURCES = ("official", "timm")
_PREFIX = "crossvit."


def _embedding_key(key: str, source: str) -> str | None:
    match = re.fullmatch(r"(pos_embed|cls_token)([._])(\d+)", key)
    if match is None:
        return None
    if (match.group(2) == ".") != (source == "official"):
        raise ConversionError(
            f"key {key!r} is in the {'official' if match.group(2) == '.' else 'timm'} layout, not source={source!r}; "
            f"pass the matching --source"
        )
    name = "position_embeddings" if match.group(1) == "pos_embed" else "cls_token"
    return f"{_PREFIX}embeddings.branches.{match.group(3)}.{name}"


def _rename(key: str) -> str:
    rules = (
        (r"patch_embed\.(\d+)\.(.+)", r"embeddings.branches.\1.patch_embed.\2"),
        (r"blocks\.(\d+)\.blocks\.(\d+)\.(.+)", r"blocks.\1.branches.\2.\3"),
        (r"blocks\.(\d+)\.projs\.(\d+)\.0\.(.+)", r"blocks.\1.fusions.\2.proj_norm.\3"),
        (r"blocks\.(\d+)\.projs\.(\d+)\.2\.(.+)", r"blocks.\1.fusions.\2.proj.\3"),
        (r"blocks\.(\d+)\.revert_projs\.(\d+)\.0\.(.+)", r"blocks.\1.fusions.\2.revert_norm.\3"),
        (r"blocks\.(\d+)\.revert_projs\.(\d+)\.2\.(.+)", r"blocks.\1.fusions.\2.revert_proj.\3"),
        # one cross-attention layer (depth[-1] == 0) is the fusion module itself, several are a Sequential
        (r"blocks\.(\d+)\.fusion\.(\d+)\.(norm1|attn)\.(.+)", r"blocks.\1.fusions.\2.layers.0.\3.\4"),
        (r"blocks\.(\d+)\.fusion\.(\d+)\.(\d+)\.(norm1|attn)\.(.+)", r"blocks.\1.fusions.\2.layers.\3.\4.\5"),
        (r"norm\.(\d+)\.(.+)", r"norms.\1.\2"),
    )
    for pattern, replacement in rules:
        if re.fullmatch(pattern, key):
            key = re.sub(pattern, replacement, key)
            key = key.replace(".norm1.", ".norm.") if ".fusions." in key else key
            return _PREFIX + key.replace(".attn.wq.", ".attn.query.")
    match = re.fullmatch(r"head\.(\d+)\.(.+)", key)
    if match:
        return f"classifiers.{match.group(1)}.{match.group(2)}"
    return key  # left for the strict load to report as unexpected


def convert_state_dict(state_dict: dict, config: CrossVitConfig | None, source: str) -> dict:
    """Rename an official or timm CrossViT state dict to the zoo's layout (no copies but the k/v fusion)."""
    check_source(source, SOURCES)
    _check_is_crossvit(state_dict, source)
    out, key_value = {}, {}
    for key, value in state_dict.items():
        new_key = _embedding_key(key, source) or _rename(key)
        match = re.fullmatch(r"(.+\.attn)\.(wk|wv)\.(weight|bias)", new_key)
        if match:
            key_value.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
            continue
        out[new_key] = value
    for (prefix, suffix), parts in key_value.items():
        if set(parts) != {"wk", "wv"}:
            raise ConversionError(f"{prefix}: checkpoint has only {sorted(parts)} of the cross-attention wk/wv {suffix}")
        out[f"{prefix}.kv.{suffix}"] = torch.cat((parts["wk"], parts["wv"]), dim=0)
    return out


def _check_is_crossvit(state_dict: dict, source: str) -> None:
    if not isinstance(state_dict, dict) or not any(".fusion." in key for key in state_dict):
        sample = ", ".join(list(state_dict)[:5]) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise ConversionError(
            f"This does not look like a CrossViT checkpoint (no 'blocks.N.fusion.' keys); first keys: {sample}. "
            f"Check --source ({source}) and that the file holds a CrossViT."
        )


def infer_config(state_dict: dict, source: str, **overrides) -> CrossVitConfig:
    """Read the branches' widths, patch sizes, image sizes, depths, MLP ratios, qkv bias, dagger stem and labels off
    the shapes. Heads cannot be read off weights: every published model uses 32-wide heads of branch 0's width
    (`embed_dim[0] // 32` heads in every branch), which is the default unless `num_heads` is given."""
    converted = convert_state_dict(state_dict, None, source)
    branches = 0
    while f"{_PREFIX}embeddings.branches.{branches}.cls_token" in converted:
        branches += 1
    if branches < 2:
        raise ConversionError(f"found {branches} CrossViT branch(es) in the checkpoint; expected at least two")
    embed = [converted[f"{_PREFIX}embeddings.branches.{b}.cls_token"].shape[-1] for b in range(branches)]
    multi_conv = f"{_PREFIX}embeddings.branches.0.patch_embed.proj.0.weight" in converted
    if multi_conv:  # the dagger stems of 12 and 16 px patches have the same shapes: the published order is [12, 16]
        patch = list(overrides.pop("patch_size", [12, 16]))
        channels = converted[f"{_PREFIX}embeddings.branches.0.patch_embed.proj.0.weight"].shape[1]
    else:
        proj = [converted[f"{_PREFIX}embeddings.branches.{b}.patch_embed.proj.weight"] for b in range(branches)]
        patch = [w.shape[-1] for w in proj]
        channels = proj[0].shape[1]
    sizes = []
    for b in range(branches):
        tokens = converted[f"{_PREFIX}embeddings.branches.{b}.position_embeddings"].shape[1] - 1
        grid = math.isqrt(tokens)
        if grid * grid != tokens:
            raise ConversionError(f"branch {b} has {tokens} position embeddings, not a square patch grid")
        sizes.append(grid * patch[b])
    nested = any(re.match(r"blocks\.\d+\.fusion\.\d+\.\d+\.", key) for key in state_dict)
    depth, k = [], 0
    while any(key.startswith(f"{_PREFIX}blocks.{k}.") for key in converted):
        block = []
        for b in range(branches):
            ids = {int(key.split(".")[5]) for key in converted if key.startswith(f"{_PREFIX}blocks.{k}.branches.{b}.")}
            block.append(max(ids) + 1 if ids else 0)
        layers = {key.split(".")[6] for key in converted if key.startswith(f"{_PREFIX}blocks.{k}.fusions.0.layers.")}
        block.append(len(layers) if nested else 0)
        depth.append(block)
        k += 1
    ratios = [converted[f"{_PREFIX}blocks.0.branches.{b}.0.mlp.fc1.weight"].shape[0] / embed[b]
              for b in range(branches)]
    head = converted.get("classifiers.0.weight")
    kwargs = dict(
        image_size=sizes, patch_size=patch, num_channels=channels, embed_dim=embed, depth=depth,
        num_heads=[max(embed[0] // 32, 1)] * branches, mlp_ratio=ratios,
        qkv_bias=f"{_PREFIX}blocks.0.branches.0.0.attn.qkv.bias" in converted, multi_conv=multi_conv,
        num_labels=head.shape[0] if head is not None else 0,
    )
    kwargs.update(overrides)
    return CrossVitConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> CrossVitConfig:
    """transformers has no CrossViT, so there is no transformers config to convert."""
    raise ConversionError("transformers has no CrossViT model; convert from --source official or timm")


def image_processor_settings(config: CrossVitConfig) -> dict:
    """The official evaluation preprocessing at the config's input size (for configs without a variant)."""
    return eval_preprocessing(config.input_size)
