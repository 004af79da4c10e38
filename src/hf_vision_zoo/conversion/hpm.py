"""HPM weights (official Haochen-Wang409/HPM, `models_mae_learn_loss.py`) -> the zoo's `HpmForPreTraining`.

The official layout is MAE's (`cls_token`, `pos_embed`, `blocks.N.*`, `mask_token`, `decoder_embed.*`,
`decoder_pos_embed`, `decoder_blocks.N.*`, `decoder_norm.*`, `decoder_pred.*`, renamed by the MAE/ViT converter) plus
the loss predictor (`decoder_blocks_losspred.N.*`, `decoder_norm_losspred.*`, `decoder_pred_losspred.*` ->
`loss_predictor.*`). Training checkpoints (`main_pretrain.py`) hold `state_dict` (DDP `module.` prefix) and
`ema_state_dict`: `load_official_checkpoint` flattens them with the EMA keys under `ema.`, which become the
`teacher.*` weights; without EMA weights the teacher starts as a copy of the model (as the official `ModelEma`).
HPM has no timm or transformers counterpart.
"""

import os
from pathlib import Path

import torch

from ..models.hpm.configuration_hpm import HpmConfig
from ..models.hpm.modeling_hpm import HpmForPreTraining
from . import mae
from .common import ConversionError, check_source, load_state_dict_file

__all__ = ["SOURCES", "EMA_PREFIX", "convert_state_dict", "infer_config", "config_from_transformers",
           "default_task", "load_official_checkpoint", "MODEL_CLASSES"]

SOURCES = ("official",)
EMA_PREFIX = "ema."
MODEL_CLASSES = {"pretraining": HpmForPreTraining}
_LOSS_PREDICTOR = (("decoder_blocks_losspred.", "loss_predictor.blocks."),
                   ("decoder_norm_losspred.", "loss_predictor.norm."),
                   ("decoder_pred_losspred.", "loss_predictor.pred."))
_TEACHER_PARTS = ("vit.", "decoder.", "loss_predictor.")


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Read an official training checkpoint (or a bare state dict) with `weights_only=True`; returns the model's
    state dict with the EMA weights (if any) added under `ema.`."""
    if Path(path).suffix == ".safetensors":
        return load_state_dict_file(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated / corrupt / not a torch file
        raise ConversionError(f"Could not read checkpoint {path} (truncated or not a state dict?): {err}") from err
    if not isinstance(checkpoint, dict):
        raise ConversionError(f"{path} does not hold a state dict")
    model = next((checkpoint[k] for k in ("state_dict", "model") if isinstance(checkpoint.get(k), dict)), checkpoint)
    out = dict(model)
    if isinstance(checkpoint.get("ema_state_dict"), dict):
        out.update({EMA_PREFIX + k: v for k, v in checkpoint["ema_state_dict"].items()})
    if not out or not all(isinstance(v, torch.Tensor) for v in out.values()):
        raise ConversionError(f"{path} does not hold a state dict of tensors")
    return out


def _split(state_dict: dict) -> tuple[dict, dict]:
    """(model, EMA) state dicts, DDP `module.` prefixes removed."""
    model, ema = {}, {}
    for key, value in state_dict.items():
        target = ema if key.startswith(EMA_PREFIX) else model
        key = key[len(EMA_PREFIX):] if target is ema else key
        target[key[len("module."):] if key.startswith("module.") else key] = value
    return model, ema


def _rename(state_dict: dict) -> dict:
    rest, out = {}, {}
    for key, value in state_dict.items():
        for old, new in _LOSS_PREDICTOR:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            rest[key] = value
    if not any(k.startswith("loss_predictor.") for k in out):
        raise ConversionError("not an HPM checkpoint: no loss predictor (decoder_*_losspred) weights; for a plain "
                              "MAE checkpoint use the 'mae' converter")
    out.update(mae.convert_state_dict(rest, None, "official"))
    return out


def convert_state_dict(state_dict: dict, config: HpmConfig | None, source: str) -> dict:
    """Official HPM keys (optionally `ema.`-prefixed EMA weights) -> `HpmForPreTraining` keys."""
    check_source(source, SOURCES)
    model, ema = _split(state_dict)
    out = _rename(model)
    if config is not None and not config.use_ema_teacher:
        if ema:
            raise ConversionError("the checkpoint has EMA weights but config.use_ema_teacher is False")
        return out
    teacher = _rename(ema) if ema else {k: v.clone() for k, v in out.items() if k.startswith(_TEACHER_PARTS)}
    out.update({"teacher." + k: v for k, v in teacher.items()})
    return out


def default_task(state_dict: dict, source: str) -> str:
    return "pretraining"


def infer_config(state_dict: dict, source: str, **overrides) -> HpmConfig:
    """The MAE hyper-parameters off the shapes (see `conversion.mae.infer_config`) plus the loss predictor depth;
    the objective and schedule keep the official defaults."""
    check_source(source, SOURCES)
    model, _ = _split(state_dict)
    converted = _rename(model)
    losspred = {k: v for k, v in model.items() if k.startswith("decoder_") and "_losspred" in k}
    base = mae.infer_config({k: v for k, v in model.items() if k not in losspred}, source,
                            **{k: overrides[k] for k in ("num_attention_heads",) if k in overrides}).to_dict()
    depth = 1 + max(int(k.split(".")[2]) for k in converted if k.startswith("loss_predictor.blocks."))
    base.pop("model_type", None)
    base.update(loss_predictor_num_hidden_layers=None if depth == base["decoder_num_hidden_layers"] else depth)
    base.update(overrides)
    return HpmConfig.from_dict(base)


def config_from_transformers(transformers_config: dict, **overrides) -> HpmConfig:
    raise ConversionError("HPM has no transformers implementation; convert an official checkpoint "
                          "(source 'official') or pass a zoo HpmConfig config.json")
