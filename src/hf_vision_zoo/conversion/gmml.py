"""GMML weights (official Sara-Ahmed/GMML, `main.py`) -> the zoo's `GmmlForPreTraining` (or its encoder `GmmlModel`).

Official training checkpoints are `{'SiT_model': state_dict, 'optimizer': ..., 'epoch': ..., 'args': ...}` where the
state dict is that of `DistributedDataParallel(FullpiplineSiT(backbone, head_recons))`: `module.backbone.*` (DINO's
ViT layout: `cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,
mlp.fc2}.*`, `norm.*`, renamed by the ViT converter) and `module.head_recons.{mlp.0,mlp.2,mlp.4,convTrans}.*`
(-> `head.mlp.N.*`, `head.conv_transpose.*`). A bare backbone state dict (as DINO-style evaluation code saves it)
converts to the encoder. No GMML weights were released at 1882712; GMML has no timm or transformers counterpart.
"""

import argparse
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..models.gmml.configuration_gmml import GmmlConfig
from ..models.gmml.modeling_gmml import GmmlForPreTraining
from . import vit
from .common import ConversionError, check_source

__all__ = ["SOURCES", "convert_state_dict", "infer_config", "config_from_transformers", "default_task",
           "load_official_checkpoint", "MODEL_CLASSES"]

SOURCES = ("official",)
MODEL_CLASSES = {"pretraining": GmmlForPreTraining}
_HEAD = (("head_recons.convTrans.", "head.conv_transpose."), ("head_recons.mlp.", "head.mlp."))


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official training checkpoint (`SiT_model`) or a bare state dict with `weights_only=True` (the
    checkpoint's `args` entry is an `argparse.Namespace`, which is allowed; nothing else is unpickled)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise ConversionError(f"Could not read checkpoint {path} (truncated or not a state dict?): {err}") from err
    if not isinstance(checkpoint, dict):
        raise ConversionError(f"{path} does not hold a state dict")
    state = next((checkpoint[k] for k in ("SiT_model", "model", "state_dict") if isinstance(checkpoint.get(k), dict)),
                 checkpoint)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def _strip(state_dict: dict) -> dict:
    """Remove the DDP `module.` prefix and a `SiT_model.` wrapper prefix, if present."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("SiT_model.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def convert_state_dict(state_dict: dict, config: GmmlConfig | None, source: str) -> dict:
    """Official keys (`[module.]backbone.*`, `[module.]head_recons.*`, or a bare backbone) -> zoo keys (`vit.*`,
    `head.*`)."""
    check_source(source, SOURCES)
    state = _strip(state_dict)
    backbone, out = {}, {}
    for key, value in state.items():
        for old, new in _HEAD:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            backbone[key[len("backbone."):] if key.startswith("backbone.") else key] = value
    if not backbone:
        raise ConversionError("not a GMML checkpoint: no backbone (ViT) weights")
    out.update(vit.convert_state_dict(backbone, config, "official"))
    return out


def default_task(state_dict: dict, source: str) -> str:
    """With the reconstruction head: the pre-training model, else the encoder."""
    keys = convert_state_dict(state_dict, None, source)
    return "pretraining" if any(k.startswith("head.") for k in keys) else "feature-extraction"


def infer_config(state_dict: dict, source: str, **overrides) -> GmmlConfig:
    """Encoder hyper-parameters off the shapes (heads: the published widths'; override `num_attention_heads`
    otherwise); the corruption and `recons_blocks` keep the official defaults unless overridden (a backbone that is
    not 12 blocks deep needs `recons_blocks`)."""
    converted = convert_state_dict(state_dict, None, source)
    kwargs = vit.encoder_config_kwargs(converted, source, overrides.get("num_attention_heads"))
    if kwargs["pooling"] != "cls" or kwargs["use_fc_norm"]:
        raise ConversionError("a GMML checkpoint has a [CLS] token and a final norm (DINO's ViT)")
    head = converted.get("head.conv_transpose.weight")
    if head is not None and (head.shape[0] != kwargs["hidden_size"] or head.shape[-1] != kwargs["patch_size"]):
        raise ConversionError(f"reconstruction head {tuple(head.shape)} does not fit the backbone (width "
                              f"{kwargs['hidden_size']}, patch {kwargs['patch_size']})")
    if head is not None:
        kwargs["num_channels"] = head.shape[1]
    # the official backbone resizes positions with DINO's bicubic interpolation (no antialias)
    kwargs.update(interpolate_antialias=False, num_labels=0)
    kwargs.update(overrides)
    if "recons_blocks" not in overrides and max(GmmlConfig.recons_blocks) > kwargs["num_hidden_layers"]:
        raise ConversionError(f"the backbone has {kwargs['num_hidden_layers']} blocks: pass recons_blocks (the "
                              f"official default 6-8-10-12 is for 12 blocks)")
    return GmmlConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> GmmlConfig:
    raise ConversionError("GMML has no transformers implementation; convert an official checkpoint "
                          "(source 'official') or pass a zoo GmmlConfig config.json")
