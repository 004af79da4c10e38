"""Sparsifiner weights (official lim142857/Sparsifiner `Sparsifiner` state dict, or a DeiT checkpoint to start
from) -> the zoo's `SparsifinerForImageClassification` / `SparsifinerModel`.

Official keys are timm's ViT layout (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}.*`, `norm.*`, `head.*`, renamed by the ViT converter) plus the connectivity
predictor `blocks.N.attn.mask_predictor.{proj_c_q.*, proj_c_k.*, proj_n, proj_back_n}`, which keeps its name under
`vit.blocks.N.attn.mask_predictor.`. With `share_inout_proj` the official state dict stores the shared table twice
(`proj_back_n` = `proj_n`); the zoo keeps one. No Sparsifiner weights were released (official README at 9a11e26):
source "deit" converts a DeiT / timm ViT checkpoint (what the official `main.py` loads before training) and fills the
predictors with the official initialisation (seeded, truncated normal std 0.02; linear biases 0), as `main.py` does.
"""

import torch

from ..models.sparsifiner.configuration_sparsifiner import SparsifinerConfig
from . import vit
from .common import ConversionError, check_source

__all__ = ["SOURCES", "convert_state_dict", "infer_config", "config_from_transformers", "default_task"]

SOURCES = ("official", "deit")
_PREDICTOR = ".attn.mask_predictor."


def _predictor_init(config: SparsifinerConfig, depth: int, seed: int = 0) -> dict:
    """Fresh predictor weights in zoo names (official `MaskPredictor` init; seeded so conversions are repeatable)."""
    generator = torch.Generator().manual_seed(seed)

    def trunc_normal(*shape):
        return torch.nn.init.trunc_normal_(torch.empty(*shape), std=0.02, a=-0.04, b=0.04, generator=generator)

    out = {}
    for i in range(depth):
        prefix = f"vit.blocks.{i}{_PREDICTOR}"
        for name in ("proj_c_q", "proj_c_k"):
            out[f"{prefix}{name}.weight"] = trunc_normal(config.channel_rank, config.head_dim)
            out[f"{prefix}{name}.bias"] = torch.zeros(config.channel_rank)
        out[f"{prefix}proj_n"] = trunc_normal(config.num_tokens, config.token_rank)
        if not config.share_inout_proj:
            out[f"{prefix}proj_back_n"] = trunc_normal(config.num_tokens, config.token_rank)
    return out


def convert_state_dict(state_dict: dict, config: SparsifinerConfig | None, source: str) -> dict:
    """Official Sparsifiner (or DeiT, source "deit") keys -> `SparsifinerForImageClassification` keys."""
    check_source(source, SOURCES)
    has_predictor = any(_PREDICTOR in k for k in state_dict)
    if source == "official" and not has_predictor:
        raise ConversionError("no `blocks.N.attn.mask_predictor.*` keys: this is not a Sparsifiner checkpoint (use "
                              "--source deit to start from a DeiT/ViT checkpoint)")
    if source == "deit" and has_predictor:
        raise ConversionError("this checkpoint already has connectivity predictors: use --source official")
    out = vit.convert_state_dict(state_dict, config, "official")
    shared = config.share_inout_proj if config is not None else False
    for key in [k for k in out if k.endswith(_PREDICTOR + "proj_back_n")]:
        twin = key[: -len("proj_back_n")] + "proj_n"
        if shared:
            if twin not in out or not torch.equal(out[key], out[twin]):
                raise ConversionError(f"share_inout_proj=True but {key} differs from {twin}; use a config with "
                                      f"share_inout_proj=False")
            del out[key]
    if source == "deit" and config is not None:
        depth = 1 + max(int(k.split(".")[2]) for k in out if k.startswith("vit.blocks."))
        out.update(_predictor_init(config, depth))
    return out


def default_task(state_dict: dict, source: str) -> str:
    return "image-classification" if "head.weight" in state_dict else "feature-extraction"


def _factor(size: int, rank: int, what: str) -> int:
    """The smallest reduction factor f with size // f == rank (the official ranks are `size // factor`)."""
    for factor in range(1, size + 1):
        if size // factor == rank:
            return factor
    raise ConversionError(f"predictor {what} rank {rank} is not {size} // an integer factor")


def infer_config(state_dict: dict, source: str, **overrides) -> SparsifinerConfig:
    """Encoder and predictor sizes off the shapes (heads: the published widths' unless `num_attention_heads` is
    given); the keep rate and thresholds are not in the weights: the official defaults unless overridden."""
    converted = convert_state_dict(state_dict, None, source)
    kwargs = vit.encoder_config_kwargs(converted, "official", overrides.get("num_attention_heads"))
    if kwargs["pooling"] != "cls" or kwargs["num_register_tokens"]:
        raise ConversionError("a Sparsifiner checkpoint has a [CLS] token, no register tokens and no fc_norm")
    kwargs["interpolate_antialias"] = False  # the official main.py resizes positions without antialias
    head = converted.get("classifier.weight")
    kwargs["num_labels"] = head.shape[0] if head is not None else 0
    if source == "official":
        prefix = f"vit.blocks.0{_PREDICTOR}"
        tokens, token_rank = converted[prefix + "proj_n"].shape
        channel_rank = converted[prefix + "proj_c_q.weight"].shape[0]
        head_dim = kwargs["hidden_size"] // kwargs["num_attention_heads"]
        kwargs["reduce_n_factor"] = _factor(tokens, token_rank, "token")
        kwargs["reduce_c_factor"] = _factor(head_dim, channel_rank, "channel")
        back = converted.get(prefix + "proj_back_n")
        kwargs["share_inout_proj"] = back is not None and torch.equal(back, converted[prefix + "proj_n"])
    kwargs.update(overrides)
    return SparsifinerConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> SparsifinerConfig:
    raise ConversionError("Sparsifiner has no transformers implementation; convert an official checkpoint "
                          "(source 'official'), a DeiT checkpoint (source 'deit') or pass a zoo config.json")
