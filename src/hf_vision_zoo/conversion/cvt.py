"""CvT weights from the official repo (leoxiaobin/CvT) or transformers -> the zoo's `CvtForImageClassification` /
`CvtBackbone`.

Pure functions: `convert_state_dict(state_dict, config, source)` only renames (the zoo keeps the official module
names inside a stage); `infer_config(state_dict, source)` reads the hyper-parameters off the tensor shapes;
`config_from_transformers(dict)` maps a transformers `CvtConfig`.

transformers 5.23 writes Cvt checkpoints to disk under the same names it uses in memory (it registers no
conversion mapping for Cvt), so one renaming covers both; a bare `CvtModel` checkpoint (keys `encoder.…`) is
accepted too.
"""

import re

from ..models.cvt.configuration_cvt import CvtConfig
from .common import ConversionError, check_source

SOURCES = ("official", "transformers")

# transformers' names inside one layer -> the zoo's (= the official) names
_TRANSFORMERS_LAYER = [
    (r"attention\.attention\.convolution_projection_(query|key|value)\.convolution_projection\.convolution\.",
     lambda m: f"attn.conv_proj_{m.group(1)[0]}.conv."),
    (r"attention\.attention\.convolution_projection_(query|key|value)\.convolution_projection\.normalization\.",
     lambda m: f"attn.conv_proj_{m.group(1)[0]}.bn."),
    (r"attention\.attention\.projection_(query|key|value)\.", lambda m: f"attn.proj_{m.group(1)[0]}."),
    (r"attention\.output\.dense\.", lambda m: "attn.proj."),
    (r"intermediate\.dense\.", lambda m: "mlp.fc1."),
    (r"output\.dense\.", lambda m: "mlp.fc2."),
    (r"layernorm_before\.", lambda m: "norm1."),
    (r"layernorm_after\.", lambda m: "norm2."),
]


def _rename_official(key: str) -> str:
    match = re.match(r"stage(\d+)\.(.+)$", key)
    if match:
        return f"cvt.stages.{match.group(1)}.{match.group(2)}"
    if key.startswith("norm."):
        return "cvt.layernorm." + key[len("norm."):]
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    return key  # left for the caller to report as unexpected


def _rename_transformers(key: str) -> str:
    if key.startswith("encoder."):
        key = "cvt." + key  # a bare CvtModel checkpoint
    if key.startswith("layernorm."):
        return "cvt." + key
    key = key.replace("cvt.encoder.stages.", "cvt.stages.")
    key = re.sub(r"(cvt\.stages\.\d+)\.embedding\.convolution_embeddings\.projection\.", r"\1.patch_embed.proj.", key)
    key = re.sub(r"(cvt\.stages\.\d+)\.embedding\.convolution_embeddings\.normalization\.", r"\1.patch_embed.norm.",
                 key)
    match = re.match(r"(cvt\.stages\.\d+)\.layers\.(\d+)\.(.+)$", key)
    if match:
        prefix, rest = f"{match.group(1)}.blocks.{match.group(2)}", match.group(3)
        for pattern, replace in _TRANSFORMERS_LAYER:
            new, count = re.subn("^" + pattern, replace, rest)
            if count:
                return f"{prefix}.{new}"
    return key


def convert_state_dict(state_dict: dict, config: CvtConfig | None, source: str) -> dict:
    """Rename a CvT state dict of `source` to the zoo's key layout (no tensor is copied)."""
    check_source(source, SOURCES)
    _check_is_cvt(state_dict, source)
    rename = _rename_official if source == "official" else _rename_transformers
    return {rename(key): value for key, value in state_dict.items()}


def _check_is_cvt(state_dict: dict, source: str) -> None:
    official = any(re.match(r"stage\d+\.patch_embed\.proj\.weight$", k) for k in state_dict)
    transformers = any(k.endswith("embedding.convolution_embeddings.projection.weight") for k in state_dict)
    if not official and not transformers:
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"This does not look like a CvT checkpoint (no convolutional token embedding keys); first keys: "
            f"{sample}. Check --source ({source}) and that the file holds a CvT model."
        )
    if (source == "transformers") != transformers:
        raise ConversionError(
            f"The keys look like a{' transformers' if transformers else 'n official'} CvT checkpoint, not "
            f"source={source!r}; pass the matching --source"
        )


def infer_config(state_dict: dict, source: str, image_size: int = 224, **overrides) -> CvtConfig:
    """Read widths, depths, kernels, MLP ratios, q/k/v bias, class tokens, projection method and labels off the
    shapes. Not stored in a checkpoint: strides and paddings (the published CvT ones are used) and the number of
    heads (width / 64, true of every published CvT); pass overrides when they differ. Official checkpoints run
    QuickGELU, transformers' run GELU."""
    converted = convert_state_dict(state_dict, None, source)
    stages = sorted({int(m.group(1)) for k in converted if (m := re.match(r"cvt\.stages\.(\d+)\.", k))})
    if stages != list(range(len(stages))):
        raise ConversionError(f"CvT checkpoint has stages {stages}; expected 0..{len(stages) - 1}")
    per_stage = {name: [] for name in ("embed_dim", "patch_sizes", "depth", "mlp_ratio", "qkv_bias", "cls_token",
                                       "qkv_projection_method", "kernel_qkv")}
    for i in stages:
        proj = converted[f"cvt.stages.{i}.patch_embed.proj.weight"]
        blocks = {int(k.split(".")[4]) for k in converted if k.startswith(f"cvt.stages.{i}.blocks.")}
        if not blocks:
            raise ConversionError(f"CvT checkpoint has no blocks in stage {i}")
        first = f"cvt.stages.{i}.blocks.0"
        conv = converted.get(f"{first}.attn.conv_proj_q.conv.weight")
        per_stage["embed_dim"].append(proj.shape[0])
        per_stage["patch_sizes"].append(proj.shape[-1])
        per_stage["depth"].append(max(blocks) + 1)
        per_stage["mlp_ratio"].append(converted[f"{first}.mlp.fc1.weight"].shape[0] / proj.shape[0])
        per_stage["qkv_bias"].append(f"{first}.attn.proj_q.bias" in converted)
        per_stage["cls_token"].append(f"cvt.stages.{i}.cls_token" in converted)
        per_stage["qkv_projection_method"].append("dw_bn" if conv is not None else "avg")
        per_stage["kernel_qkv"].append(conv.shape[-1] if conv is not None else 3)
    count = len(stages)
    published = CvtConfig()
    defaults = {name: (getattr(published, name) + [getattr(published, name)[-1]] * count)[:count]
                for name in ("patch_stride", "patch_padding", "padding_kv", "stride_kv", "padding_q", "stride_q")}
    first_conv = converted["cvt.stages.0.patch_embed.proj.weight"]
    head = converted.get("classifier.weight")
    kwargs = dict(
        image_size=image_size, num_channels=first_conv.shape[1], **per_stage, **defaults,
        num_heads=[max(1, d // 64) for d in per_stage["embed_dim"]],
        attention_drop_rate=[0.0] * count, drop_rate=[0.0] * count, drop_path_rate=[0.0] * count,
        hidden_act="quick_gelu" if source == "official" else "gelu",
        num_labels=head.shape[0] if head is not None else 0,
    )
    kwargs.update(overrides)
    return CvtConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> CvtConfig:
    """A transformers `CvtConfig` (as a dict, e.g. its config.json) -> the zoo's config. Field names are shared;
    transformers runs exact GELU and LayerNorms with PyTorch's default eps (its `layer_norm_eps` field is unused), so
    the zoo config gets `hidden_act="gelu"` and `layer_norm_eps=1e-5`."""
    if transformers_config.get("model_type") not in (None, "cvt"):
        raise ConversionError(f"config.json is a {transformers_config.get('model_type')!r} config, not a CvT one")
    fields = set(CvtConfig.__dataclass_fields__) - {"_out_features", "_out_indices", "layer_norm_eps", "hidden_act",
                                                    "image_size"}
    kwargs = {k: v for k, v in transformers_config.items() if k in fields}
    for key in ("id2label", "label2id", "out_features", "out_indices"):
        if key in transformers_config:
            kwargs[key] = transformers_config[key]
    if "id2label" in kwargs:
        kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
    kwargs.update(hidden_act="gelu", layer_norm_eps=1e-5)
    kwargs.update(overrides)
    return CvtConfig(**kwargs)


_SPEC_FIELDS = {  # official MODEL.SPEC key -> zoo field
    "PATCH_SIZE": "patch_sizes", "PATCH_STRIDE": "patch_stride", "PATCH_PADDING": "patch_padding",
    "DIM_EMBED": "embed_dim", "NUM_HEADS": "num_heads", "DEPTH": "depth", "MLP_RATIO": "mlp_ratio",
    "ATTN_DROP_RATE": "attention_drop_rate", "DROP_RATE": "drop_rate", "DROP_PATH_RATE": "drop_path_rate",
    "QKV_BIAS": "qkv_bias", "CLS_TOKEN": "cls_token", "QKV_PROJ_METHOD": "qkv_projection_method",
    "KERNEL_QKV": "kernel_qkv", "PADDING_KV": "padding_kv", "STRIDE_KV": "stride_kv", "PADDING_Q": "padding_q",
    "STRIDE_Q": "stride_q",
}


def config_from_official_spec(spec: dict, **overrides) -> CvtConfig:
    """The `MODEL.SPEC` of an official experiment yaml (as a dict) -> the zoo's config (QuickGELU, as the official
    `get_cls_model` builds it). `NUM_STAGES` must match the lists; `POS_EMBED` must be all False (the official code
    never builds one) and `INIT` only matters for training from scratch."""
    unknown = sorted(set(spec) - set(_SPEC_FIELDS) - {"NUM_STAGES", "POS_EMBED", "INIT"})
    if unknown:
        raise ConversionError(f"Unknown keys in the official CvT spec: {unknown}")
    if any(spec.get("POS_EMBED", [])):
        raise ConversionError("POS_EMBED is set, but the official CvT code builds no position embedding")
    kwargs = {field: list(spec[key]) for key, field in _SPEC_FIELDS.items() if key in spec}
    if "NUM_STAGES" in spec and len(kwargs.get("depth", [])) != spec["NUM_STAGES"]:
        raise ConversionError(f"NUM_STAGES={spec['NUM_STAGES']} but DEPTH has {len(kwargs.get('depth', []))} entries")
    kwargs.update(hidden_act="quick_gelu")
    kwargs.update(overrides)
    return CvtConfig(**kwargs)
