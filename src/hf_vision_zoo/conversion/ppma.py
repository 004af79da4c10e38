"""PPMA weights from the official repo (zhongchenzhao/PPMA) -> the zoo's `PpmaForImageClassification` /
`PpmaBackbone`.

Classification checkpoints (`classification/.../best.pth`, wrapped in `{"model": ...}`; the loader unwraps it) hold
`PPMAViT.state_dict()`; detection/segmentation checkpoints hold the mmdet/mmseg model, whose `backbone.*` entries
are a `Backbone_PPMAViT` (no head, per-stage `outnorm{i}`) and are converted for `PpmaBackbone` (the decode heads
are not part of it and are left out). Pure functions: `convert_state_dict(state_dict, config, source)` renames;
`infer_config(state_dict, source)` reads the hyper-parameters off the tensor shapes.
"""

import re

import torch

from ..layers.rotary import rotary_frequencies
from ..models.ppma.configuration_ppma import PpmaConfig
from .common import ConversionError, check_source

SOURCES = ("official",)

_BLOCK = [  # official name inside a block -> ours
    ("pos.conv.", "cpe."),
    ("retention_layer_norm.", "norm1."),
    ("final_layer_norm.", "norm2."),
    ("retention.lepe.conv.", "attn.lepe."),
    ("retention.", "attn."),
    ("ffn.dwconv.conv.", "ffn.dwconv."),
]


def _rename(key: str) -> str | None:
    """Official key -> zoo key of `PpmaForImageClassification` / `PpmaBackbone`; None for rebuilt buffers."""
    if key.startswith("patch_embed.proj."):
        return "ppma.embeddings." + key[len("patch_embed."):]
    match = re.match(r"layers\.(\d+)\.(.+)$", key)
    if match:
        stage, rest = match.groups()
        if rest == "Relpos.angle":
            return None
        block = re.match(r"blocks\.(\d+)\.(.+)$", rest)
        if block:
            index, inner = block.groups()
            if inner in ("gamma_1", "gamma_2"):
                return f"ppma.stages.{stage}.blocks.{index}.ls{inner[-1]}.gamma"
            for old, new in _BLOCK:
                if inner.startswith(old):
                    inner = new + inner[len(old):]
                    break
            return f"ppma.stages.{stage}.blocks.{index}.{inner}"
        return f"ppma.stages.{stage}.{rest}"
    match = re.match(r"outnorm(\d+)\.(.+)$", key)
    if match:
        return f"hidden_states_norms.stage{int(match.group(1)) + 1}.{match.group(2)}"
    for old, new in (("proj.", "head.proj."), ("norm.", "head.norm."), ("head.", "classifier.")):
        if key.startswith(old):
            return new + key[len(old):]
    return key  # left for the caller to report as unexpected


def _split_detection_checkpoint(state_dict: dict) -> dict:
    """An mmdet/mmseg model's `backbone.*` entries (the rest are the task heads); other dicts pass through."""
    if any(k.startswith("backbone.") for k in state_dict):
        return {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    return state_dict


def _check_is_ppma(state_dict: dict) -> None:
    if not any(k.endswith("path_embed.A_log") for k in state_dict):
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"This does not look like an official PPMA checkpoint (no '...retention.path_embed.A_log' keys); first "
            f"keys: {sample}"
        )


def convert_state_dict(state_dict: dict, config: PpmaConfig, source: str) -> dict:
    """Rename an official PPMA state dict to the zoo's key layout; drops (after checking) the rotary buffers."""
    check_source(source, SOURCES)
    state_dict = _split_detection_checkpoint(state_dict)
    _check_is_ppma(state_dict)
    out = {}
    for key, value in state_dict.items():
        new_key = _rename(key)
        if new_key is None:
            stage = int(key.split(".")[1])
            if stage < len(config.embed_dims):
                head_dim = config.embed_dims[stage] // config.num_heads[stage]
                expected = rotary_frequencies(head_dim)
                if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-5):
                    raise ConversionError(
                        f"{key} does not match the config's rotary frequencies (head dim {head_dim}); the "
                        f"checkpoint has another embed_dims / num_heads than the config"
                    )
            continue
        if new_key.endswith((".ls1.gamma", ".ls2.gamma")):
            value = value.reshape(-1)
        out[new_key] = value
    return out


def infer_config(state_dict: dict, source: str, image_size: int = 224, **overrides) -> PpmaConfig:
    """Read embed_dims, depths, heads, MLP ratios, LayerScale, projection and labels off the shapes.

    `chunkwise_recurrents` leaves no trace in the weights (axial and full attention have the same parameters); it
    defaults to the published models' choice (full attention in the last stage when stage 3 is deep, as in PPMA-S/B,
    else in the last two, as in PPMA-T). Pass `chunkwise_recurrents=[...]` (or a --variant) when that is wrong.
    """
    check_source(source, SOURCES)
    raw = _split_detection_checkpoint(state_dict)
    _check_is_ppma(raw)
    embed_dims, depths, heads, ratios, scales = [], [], [], [], []
    stage = 0
    while any(k.startswith(f"layers.{stage}.blocks.") for k in raw):
        blocks = {int(k.split(".")[3]) for k in raw if k.startswith(f"layers.{stage}.blocks.")}
        prefix = f"layers.{stage}.blocks.0."
        dim = raw[prefix + "retention.q_proj.weight"].shape[0]
        embed_dims.append(dim)
        depths.append(max(blocks) + 1)
        heads.append(raw[prefix + "retention.path_embed.A_log"].shape[0])
        ratios.append(raw[prefix + "ffn.fc1.weight"].shape[0] / dim)
        scales.append(prefix + "gamma_1" in raw)
        stage += 1
    if not depths:
        raise ConversionError("No 'layers.<i>.blocks.<j>' keys: not a PPMA checkpoint")
    ratios = [int(r) if float(r).is_integer() else r for r in ratios]
    gammas = [raw[k] for k in raw if k.endswith("gamma_1")]
    head = raw.get("head.weight")
    proj = raw.get("proj.weight")
    # The published models are axial (chunkwise) in every stage but the last for deep stage 3 (S, B: depth >= 18)
    # and in stages 1-2 otherwise (T); the weights are the same either way, so this is a default only.
    chunkwise = [i < len(depths) - (1 if len(depths) == 4 and depths[2] >= 18 else 2) for i in range(len(depths))]
    kwargs = dict(
        image_size=image_size, num_channels=raw["patch_embed.proj.0.weight"].shape[1], embed_dims=embed_dims,
        depths=depths, num_heads=heads, mlp_ratios=ratios, chunkwise_recurrents=chunkwise, layerscales=scales,
        projection=proj.shape[0] if proj is not None else 1024,
        num_labels=head.shape[0] if head is not None else 1000,
    )
    if gammas:
        kwargs["layer_init_values"] = 1e-6
    kwargs.update(overrides)
    return PpmaConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> PpmaConfig:
    raise ConversionError("transformers has no PPMA model; convert official checkpoints with --source official")


def image_processor_settings(config: PpmaConfig) -> dict:
    """The official evaluation transform for the config's (square) input size: resize the short side to
    `size * 256 / 224` (to `size` above 224), then centre-crop `size`."""
    height, width = config.image_size_2d
    if height != width:
        return {"size": {"height": height, "width": width}, "do_center_crop": False}
    short = height if height > 224 else int(256 / 224 * height)
    return {"size": {"shortest_edge": short}, "crop_size": {"height": height, "width": width}, "do_center_crop": True}
