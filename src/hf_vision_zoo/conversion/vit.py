"""ViT weights from timm, the official repos built on timm's layout (DeiT, MAE, DINO: `{'model': state_dict}` with
`blocks.N.attn.qkv.weight` keys) or transformers (`ViTModel`, `ViTForImageClassification`; v5 in-memory names
`layers.N.attention.q_proj` and legacy on-disk names `encoder.layer.N.attention.attention.query`) -> the zoo's
`VitForImageClassification` / `VitModel`.

Pure functions: `rename_state_dict` maps every key to the zoo layout (fusing transformers' q/k/v), shared with the
MAE converter (`conversion/mae.py`); `convert_state_dict` keeps the encoder and classifier (an MAE pre-training
checkpoint's decoder is left out: the ViT is its encoder); `infer_config` reads the hyper-parameters off the shapes.
"""

import math
import re

import torch

from ..models.vit.configuration_vit import VitConfig
from .common import ConversionError, check_source

SOURCES = ("official", "timm", "transformers")

# timm / official (DeiT, MAE, DINO) top-level names -> zoo names
_TIMM_PREFIXES = (
    ("cls_token", "vit.embeddings.cls_token"),
    ("reg_token", "vit.embeddings.register_tokens"),
    ("pos_embed", "vit.embeddings.position_embeddings"),
    ("patch_embed.proj.", "vit.embeddings.patch_embed.proj."),
    ("blocks.", "vit.blocks."),
    ("norm.", "vit.layernorm."),
    ("fc_norm.", "vit.fc_norm."),
    ("head.", "classifier."),
    # the official MAE pre-training model
    ("mask_token", "decoder.mask_token"),
    ("decoder_embed.", "decoder.embed."),
    ("decoder_pos_embed", "decoder.position_embeddings"),
    ("decoder_blocks.", "decoder.blocks."),
    ("decoder_norm.", "decoder.norm."),
    ("decoder_pred.", "decoder.pred."),
)

# transformers names outside the blocks (v5 and legacy share them)
_TRANSFORMERS_PREFIXES = (
    ("vit.embeddings.patch_embeddings.projection.", "vit.embeddings.patch_embed.proj."),
    ("vit.embeddings.", "vit.embeddings."),
    ("vit.layernorm.", "vit.layernorm."),
    ("vit.pooler.dense.", "vit.pooler.dense."),
    ("classifier.", "classifier."),
    ("decoder.decoder_embed.", "decoder.embed."),
    ("decoder.mask_token", "decoder.mask_token"),
    ("decoder.decoder_pos_embed", "decoder.position_embeddings"),
    ("decoder.decoder_norm.", "decoder.norm."),
    ("decoder.decoder_pred.", "decoder.pred."),
)
# the decoder of a ViTMAE saved by transformers v5 is stored as `decoder.decoder_encoder.layer.N` (its save-time
# renaming of `layers.` -> `encoder.layer.` also hits `decoder_layers.`)
_TRANSFORMERS_BLOCK = re.compile(
    r"^(?:vit\.(?:encoder\.layer|layers)|decoder\.decoder_(?:layers|encoder\.layer))\.(\d+)\.(.+)$")
# inside a transformers block (v5 in-memory | legacy) -> zoo TransformerBlock names; q/k/v are fused into qkv
_TRANSFORMERS_INNER = {
    "attention.o_proj": "attn.proj", "attention.output.dense": "attn.proj",
    "mlp.fc1": "mlp.fc1", "intermediate.dense": "mlp.fc1",
    "mlp.fc2": "mlp.fc2", "output.dense": "mlp.fc2",
    "layernorm_before": "norm1", "layernorm_after": "norm2",
}
_QKV_PARTS = {"attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
              "attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2}
_BARE_TRANSFORMERS = ("embeddings.", "layers.", "encoder.layer.", "layernorm.", "pooler.")


def _rename_timm(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        for old, new in _TIMM_PREFIXES:
            if key == old or (old.endswith(".") and key.startswith(old)):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value  # left for load_strict to report as unexpected
    return out


def _rename_transformers(state_dict: dict) -> dict:
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key.startswith(_BARE_TRANSFORMERS):  # a bare ViTModel / ViTMAEModel
            key = "vit." + key
        match = _TRANSFORMERS_BLOCK.match(key)
        if match:
            index, rest = match.groups()
            scope = "decoder" if key.startswith("decoder.") else "vit"
            inner, _, suffix = rest.rpartition(".")
            if inner in _QKV_PARTS:
                qkv.setdefault((scope, index, suffix), [None] * 3)[_QKV_PARTS[inner]] = value
                continue
            if inner in _TRANSFORMERS_INNER:
                out[f"{scope}.blocks.{index}.{_TRANSFORMERS_INNER[inner]}.{suffix}"] = value
                continue
        else:
            for old, new in _TRANSFORMERS_PREFIXES:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
        out[key] = value
    for (scope, index, suffix), parts in qkv.items():
        if any(part is None for part in parts):
            raise ConversionError(f"{scope} layer {index}: the checkpoint has only some of query/key/value {suffix}")
        out[f"{scope}.blocks.{index}.attn.qkv.{suffix}"] = torch.cat(parts, dim=0)
    return out


def rename_state_dict(state_dict: dict, source: str) -> dict:
    """Every key in the zoo layout (`vit.*`, `classifier.*`, and `decoder.*` for MAE pre-training weights)."""
    check_source(source, SOURCES)
    _check_is_vit(state_dict, source)
    return _rename_transformers(state_dict) if source == "transformers" else _rename_timm(state_dict)


def convert_state_dict(state_dict: dict, config: VitConfig, source: str) -> dict:
    """A ViT / DeiT / MAE / DINO state dict of `source` -> `VitForImageClassification` keys. The decoder of an MAE
    pre-training checkpoint is dropped (the ViT is its encoder)."""
    out = {k: v for k, v in rename_state_dict(state_dict, source).items() if not k.startswith("decoder.")}
    return _fit_position_embeddings(out, config)


def _fit_position_embeddings(out: dict, config: VitConfig) -> dict:
    """timm/official tables are `(1, [P+]N, C)`; a checkpoint stored as `(1, H, W, C)` is flattened."""
    key = "vit.embeddings.position_embeddings"
    if key in out and out[key].ndim == 4:
        out[key] = out[key].flatten(1, 2)
    return out


def _check_is_vit(state_dict: dict, source: str) -> None:
    transformers_like = any(k.startswith(("vit.embeddings.patch_embeddings", "embeddings.patch_embeddings"))
                            for k in state_dict)
    timm_like = any(k.startswith("patch_embed.proj") for k in state_dict)
    if not transformers_like and not timm_like:
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"This does not look like a ViT checkpoint (no patch embedding keys); first keys: {sample}. "
            f"Check --source ({source}) and that the file holds a plain Vision Transformer."
        )
    if any("relative_position_bias_table" in k for k in state_dict):
        raise ConversionError("This checkpoint has relative position bias tables (Swin/BEiT), not a plain ViT")
    if (source == "transformers") != transformers_like:
        raise ConversionError(
            f"The keys look like a {'transformers' if transformers_like else 'official/timm'} ViT checkpoint, "
            f"not source={source!r}; pass the matching --source"
        )


# head counts of the published widths (head dim 64, except ViT-H/14 with 16 heads of 80)
_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}


def encoder_config_kwargs(converted: dict, source: str, num_attention_heads: int | None = None) -> dict:
    """Encoder hyper-parameters read off zoo-layout keys (shared with the MAE converter); the number of heads is not
    in the weights: the published models' (head width 64, ViT-H 16 heads) unless given."""
    proj = converted["vit.embeddings.patch_embed.proj.weight"]
    hidden, channels, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    depth = 1 + max(int(k.split(".")[2]) for k in converted if k.startswith("vit.blocks."))
    if num_attention_heads is None and hidden not in _HEADS and hidden % 64:
        raise ConversionError(f"cannot guess the number of heads for width {hidden}; pass num_attention_heads")
    registers = converted.get("vit.embeddings.register_tokens")
    class_token = "vit.embeddings.cls_token" in converted
    prefix = int(class_token) + (registers.shape[1] if registers is not None else 0)
    positions = converted["vit.embeddings.position_embeddings"].shape[1]
    patches = positions - prefix  # the table covers the prefix tokens, unless its length is a square grid itself
    if patches <= 0 or math.isqrt(patches) ** 2 != patches:
        patches = positions
    side = math.isqrt(patches)
    if side * side != patches:
        raise ConversionError(f"position table of {positions} rows is not a square patch grid; pass image_size")
    fc_norm = "vit.fc_norm.weight" in converted
    return dict(
        image_size=side * patch, patch_size=patch, num_channels=channels, hidden_size=hidden,
        num_hidden_layers=depth, num_attention_heads=num_attention_heads or _HEADS.get(hidden, hidden // 64),
        mlp_ratio=converted["vit.blocks.0.mlp.fc1.weight"].shape[0] / hidden,
        qkv_bias="vit.blocks.0.attn.qkv.bias" in converted,
        layer_norm_eps=1e-12 if source == "transformers" else 1e-6,
        class_token=class_token, num_register_tokens=prefix - int(class_token),
        no_embed_class=prefix > 0 and patches == positions,
        pooling="mean" if fc_norm or not class_token else "cls", use_fc_norm=fc_norm,
        use_pooler="vit.pooler.dense.weight" in converted,
        use_mask_token="vit.embeddings.mask_token" in converted,
        layer_scale_init_value=1e-5 if "vit.blocks.0.ls1.gamma" in converted else None,
        interpolate_antialias=source != "transformers",
    )


def infer_config(state_dict: dict, source: str, **overrides) -> VitConfig:
    """Read width, depth, patch, MLP ratio, prefix tokens, pooling and labels off the shapes; the number of heads
    follows the published models (override `num_attention_heads` for others)."""
    converted = convert_state_dict(state_dict, VitConfig(), source)
    kwargs = encoder_config_kwargs(converted, source, overrides.get("num_attention_heads"))
    head = converted.get("classifier.weight")
    kwargs["num_labels"] = head.shape[0] if head is not None else 0
    kwargs.update(overrides)
    return VitConfig(**kwargs)


_SHARED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "hidden_act", "hidden_dropout_prob",
                  "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps", "image_size", "patch_size",
                  "num_channels", "qkv_bias")


def transformers_config_kwargs(transformers_config: dict) -> dict:
    """The encoder fields of a transformers `ViTConfig` / `ViTMAEConfig` dict, in zoo names."""
    if transformers_config.get("model_type") not in ("vit", "vit_mae"):
        raise ConversionError(f"expected a transformers ViT or ViTMAE config, got model_type "
                              f"{transformers_config.get('model_type')!r}")
    kwargs = {k: transformers_config[k] for k in _SHARED_FIELDS if k in transformers_config}
    hidden = kwargs.get("hidden_size", 768)
    kwargs["mlp_ratio"] = transformers_config.get("intermediate_size", 4 * hidden) / hidden
    kwargs.setdefault("layer_norm_eps", 1e-12)
    for key in ("id2label", "label2id"):
        if key in transformers_config:
            kwargs[key] = transformers_config[key]
    if "id2label" in kwargs:
        kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
    return kwargs


def config_from_transformers(transformers_config: dict, **overrides) -> VitConfig:
    """A transformers `ViTConfig` (as a dict, e.g. its config.json) -> the zoo's config. A config saved from a bare
    `ViTModel` (`architectures: ["ViTModel"]`) keeps its dense+tanh pooler."""
    kwargs = transformers_config_kwargs(transformers_config)
    kwargs["use_pooler"] = "ViTModel" in (transformers_config.get("architectures") or [])
    kwargs["interpolate_antialias"] = False
    kwargs.update(overrides)
    return VitConfig(**kwargs)


def default_task(state_dict: dict, source: str) -> str:
    """A checkpoint with a classifier becomes `VitForImageClassification`, an encoder (MAE/DINO pre-training,
    transformers `ViTModel`) becomes `VitModel`."""
    keys = convert_state_dict(state_dict, None, source)
    return "image-classification" if "classifier.weight" in keys else "feature-extraction"
