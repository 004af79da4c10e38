"""MAE weights -> the zoo's `MaeForPreTraining` (or its encoder `MaeModel` / classifier `MaeForImageClassification`).

Sources: the official facebookresearch/mae checkpoints (`{'model': state_dict}`, keys `blocks.N.attn.qkv.weight`,
`decoder_blocks.N...`, `mask_token`, `decoder_pos_embed`; the released `mae_pretrain_vit_*.pth` hold the encoder
only), timm (`vit_*.mae`, encoder only) and transformers `ViTMAEForPreTraining` / `ViTMAEModel` (v5 and legacy
names). Renaming is shared with `conversion/vit.py`.
"""

from ..models.mae.configuration_mae import MaeConfig
from ..models.mae.modeling_mae import MaeForPreTraining
from .common import ConversionError
from .vit import (
    SOURCES,
    _fit_position_embeddings,
    encoder_config_kwargs,
    rename_state_dict,
    transformers_config_kwargs,
)

__all__ = ["SOURCES", "convert_state_dict", "infer_config", "config_from_transformers", "default_task",
           "MODEL_CLASSES"]

# tasks beyond the registry's (feature-extraction / image-classification) that this converter can build
MODEL_CLASSES = {"pretraining": MaeForPreTraining}


def convert_state_dict(state_dict: dict, config: MaeConfig, source: str) -> dict:
    """Rename an MAE state dict of `source` to `MaeForPreTraining` keys (`vit.*`, `decoder.*`, `classifier.*`)."""
    return _fit_position_embeddings(rename_state_dict(state_dict, source), config)


def default_task(state_dict: dict, source: str) -> str:
    """What a checkpoint holds: the whole pre-training model (decoder present), a fine-tuned classifier (head
    present) or just the encoder."""
    keys = convert_state_dict(state_dict, None, source)
    if any(k.startswith("decoder.") for k in keys):
        return "pretraining"
    if "classifier.weight" in keys:
        return "image-classification"
    return "feature-extraction"


def infer_config(state_dict: dict, source: str, **overrides) -> MaeConfig:
    """Encoder and decoder hyper-parameters off the shapes (decoder heads: 16, the official default; norm_pix_loss
    cannot be read from weights and defaults to False)."""
    converted = convert_state_dict(state_dict, None, source)
    kwargs = encoder_config_kwargs(converted, source, overrides.get("num_attention_heads"))
    embed = converted.get("decoder.embed.weight")
    # fine-tuning makes the position table learnable; the pre-trained encoder keeps the fixed sin-cos one
    kwargs["position_embedding_type"] = "learned" if "classifier.weight" in converted else "sincos"
    if embed is not None:
        if kwargs["pooling"] != "cls":
            raise ConversionError("an MAE pre-training checkpoint needs a [CLS] token and the encoder's final norm")
        depth = 1 + max(int(k.split(".")[2]) for k in converted if k.startswith("decoder.blocks."))
        dim = embed.shape[0]
        kwargs.update(decoder_hidden_size=dim, decoder_num_hidden_layers=depth,
                      decoder_num_attention_heads=16 if dim % 16 == 0 else max(1, dim // 64),
                      decoder_mlp_ratio=converted["decoder.blocks.0.mlp.fc1.weight"].shape[0] / dim)
    head = converted.get("classifier.weight")
    kwargs["num_labels"] = head.shape[0] if head is not None else 0
    kwargs.update(overrides)
    return MaeConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> MaeConfig:
    """A transformers `ViTMAEConfig` dict -> `MaeConfig` (decoder_intermediate_size becomes decoder_mlp_ratio)."""
    if transformers_config.get("model_type") != "vit_mae":
        raise ConversionError(f"expected a transformers ViTMAE config, got model_type "
                              f"{transformers_config.get('model_type')!r}")
    kwargs = transformers_config_kwargs(transformers_config)
    for key in ("id2label", "label2id"):  # a pre-training model has no classes
        kwargs.pop(key, None)
    for key in ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads", "mask_ratio",
                "norm_pix_loss"):
        if key in transformers_config:
            kwargs[key] = transformers_config[key]
    decoder = kwargs.get("decoder_hidden_size", 512)
    kwargs["decoder_mlp_ratio"] = transformers_config.get("decoder_intermediate_size", 4 * decoder) / decoder
    kwargs.update(position_embedding_type="sincos", interpolate_antialias=False, num_labels=0)
    kwargs.update(overrides)
    return MaeConfig(**kwargs)
