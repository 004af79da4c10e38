"""GMM-ViT weights from the official code (CatworldLee/Gaussian-Mixture-Mask-Attention `models/vit.py`, lucidrains
layout; main.py saves `{'model_state_dict': ...}`) -> the zoo's `GmmVitForImageClassification` / `GmmVitModel`.

A rename plus one reshape: the official patch embedding is `Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')` +
Linear, i.e. a `(dim, p*p*c)` matrix that becomes the `(dim, c, p, p)` conv kernel. The fixed distance kernel the
official code saves at the top (`mask`) and again in every GMM layer (`...fn.mask.mask`, 4-D) is dropped after checking
it matches the configured grid (the zoo rebuilds it as a non-persistent buffer); the ELM's `...fn.mask.mask` (2-D) is
a parameter and is kept. The official head `mlp_head = LayerNorm + Linear` is the zoo's fc_norm + classifier
(mean pooling, masked models) or final norm + classifier ([CLS] pooling, the unmasked baseline).
"""

import math
import re

import torch

from ..layers.gaussian_mixture_mask import gaussian_distance_kernel
from ..models.gmm_vit.configuration_gmm_vit import GmmVitConfig
from .common import ConversionError, check_source

SOURCES = ("official",)

_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.([01])\.(.+)$")
_ATTENTION = {"norm.": "norm1.", "fn.to_qkv.": "attn.qkv.", "fn.to_out.0.": "attn.proj.",
              "fn.mask.sigma": "attn.mask.sigma", "fn.mask.alpha": "attn.mask.alpha"}
_MLP = {"norm.": "norm2.", "fn.net.0.": "mlp.fc1.", "fn.net.3.": "mlp.fc2."}


def _unwrap(state_dict: dict) -> dict:
    if isinstance(state_dict.get("model_state_dict"), dict):
        state_dict = state_dict["model_state_dict"]
    state_dict = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if "to_patch_embedding.1.weight" not in state_dict or "pos_embedding" not in state_dict:
        raise ConversionError("Not an official GMM-ViT (models/vit.py) state dict: no to_patch_embedding.1.weight / "
                              "pos_embedding")
    return state_dict


def _check_kernel(name: str, tensor: torch.Tensor, config: GmmVitConfig) -> None:
    """The saved distance kernel must be the one of the configured patch grid."""
    expected = gaussian_distance_kernel(config.grid_size)
    if tuple(tensor.shape[-2:]) != tuple(expected.shape[-2:]):
        raise ConversionError(
            f"{name} is a {tensor.shape[-1]}-token mask but the config's patch grid {config.grid_size[0]}x"
            f"{config.grid_size[1]} has {config.num_patches} tokens (image_size {config.image_size}, patch_size "
            f"{config.patch_size}): the mask grid doesn't match the token grid")
    if not torch.allclose(tensor.float().reshape(expected.shape), expected, rtol=0, atol=1e-6):
        raise ConversionError(f"{name} is not the official Gaussian distance kernel of a "
                              f"{config.grid_size[0]}x{config.grid_size[1]} grid")


def convert_state_dict(state_dict: dict, config: GmmVitConfig, source: str = "official") -> dict:
    """Official `ViT` state dict -> zoo `GmmVitForImageClassification` keys (`vit.*`, `classifier.*`)."""
    check_source(source, SOURCES)
    state_dict = _unwrap(state_dict)
    head_norm = "vit.fc_norm." if config.fc_norm else "vit.layernorm."
    out = {}
    for key, value in state_dict.items():
        layer = _LAYER.match(key)
        if key == "mask":
            _check_kernel(key, value, config)
        elif key == "pos_embedding":
            out["vit.embeddings.position_embeddings"] = value
        elif key == "cls_token":
            out["vit.embeddings.cls_token"] = value
        elif key == "to_patch_embedding.1.weight":
            patch, channels = config.patch_size, config.num_channels
            if value.shape[1] != patch * patch * channels:
                raise ConversionError(f"{key} has {value.shape[1]} inputs, expected patch_size^2 * num_channels = "
                                      f"{patch * patch * channels}")
            out["vit.embeddings.patch_embed.proj.weight"] = (
                value.reshape(value.shape[0], patch, patch, channels).permute(0, 3, 1, 2).contiguous())
        elif key == "to_patch_embedding.1.bias":
            out["vit.embeddings.patch_embed.proj.bias"] = value
        elif key.startswith("mlp_head.0."):
            out[head_norm + key[len("mlp_head.0."):]] = value
        elif key.startswith("mlp_head.1."):
            out["classifier." + key[len("mlp_head.1."):]] = value
        elif layer:
            index, part, rest = layer.groups()
            if part == "0" and rest == "fn.mask.mask":
                if value.ndim == 4:  # GMM: the shared distance kernel
                    _check_kernel(key, value, config)
                else:  # ELM: the learnable element-wise mask
                    out[f"vit.blocks.{index}.attn.mask.mask"] = value
                continue
            table = _ATTENTION if part == "0" else _MLP
            for old, new in table.items():
                if rest.startswith(old):
                    out[f"vit.blocks.{index}.{new}{rest[len(old):]}"] = value
                    break
            else:
                raise ConversionError(f"Unknown key in the official GMM-ViT state dict: {key}")
        else:
            raise ConversionError(f"Unknown key in the official GMM-ViT state dict: {key}")
    return out


def infer_config(state_dict: dict, source: str = "official", **overrides) -> GmmVitConfig:
    """Read the hyper-parameters off the shapes. The number of heads is stored only by the GMM (`sigma`); for ELM or
    unmasked checkpoints pass `num_attention_heads` (official 'vit': 12). Square grids and 3 channels (official)."""
    check_source(source, SOURCES)
    sd = _unwrap(state_dict)
    hidden = sd["pos_embedding"].shape[-1]
    class_token = "cls_token" in sd
    num_patches = sd["pos_embedding"].shape[1] - int(class_token)
    channels = overrides.get("num_channels", 3)
    patch = math.isqrt(sd["to_patch_embedding.1.weight"].shape[1] // channels)
    side = math.isqrt(num_patches)
    if side * side != num_patches or patch * patch * channels != sd["to_patch_embedding.1.weight"].shape[1]:
        raise ConversionError("cannot read a square patch grid / patch size off pos_embedding and "
                              "to_patch_embedding; pass image_size and patch_size")
    depth = 1 + max(int(m.group(1)) for m in map(_LAYER.match, sd) if m)
    kwargs = dict(image_size=side * patch, patch_size=patch, hidden_size=hidden, num_hidden_layers=depth,
                  mlp_ratio=sd["transformer.layers.0.1.fn.net.0.weight"].shape[0] / hidden,
                  qkv_bias="transformer.layers.0.0.fn.to_qkv.bias" in sd, class_token=class_token,
                  pooling="cls" if class_token else "mean", num_labels=sd["mlp_head.1.weight"].shape[0])
    if sd["transformer.layers.0.0.fn.to_qkv.weight"].shape[0] != 3 * hidden:
        raise ConversionError("attention inner width (dim_head * heads) != dim is not supported by the zoo's ViT")
    sigma = sd.get("transformer.layers.0.0.fn.mask.sigma")
    if sigma is not None:
        kwargs.update(attention_mask_type="gmm", num_kernels=sigma.shape[0], num_attention_heads=sigma.shape[1])
    else:
        elm = sd.get("transformer.layers.0.0.fn.mask.mask")
        kwargs["attention_mask_type"] = "elm" if elm is not None and elm.ndim == 2 else "none"
        if "num_attention_heads" not in overrides:
            raise ConversionError("an ELM or unmasked checkpoint does not store the number of heads: pass "
                                  "num_attention_heads (the official 'vit' model uses 12)")
    kwargs.update(overrides)
    return GmmVitConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> GmmVitConfig:
    raise ConversionError("transformers has no GMM-ViT; convert from the official checkpoint (--source official)")


__all__ = ["SOURCES", "convert_state_dict", "infer_config", "config_from_transformers"]
