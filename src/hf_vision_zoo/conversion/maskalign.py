"""MaskAlign weights (official OpenDriveLab/maskalign, `models_pretrain.MaskedAutoencoderViT`) -> the zoo's
`MaskAlignForPreTraining` (or its student `MaskAlignModel` / classifier `MaskAlignForImageClassification`).

The official layout is MAE's encoder (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.*`, `norm.*`,
renamed by the ViT converter) plus Dynamic Alignment (`distill_weights`, `distill_heads.N.*`, kept as they are) and
the frozen transformers teacher (`clip_model.*` or `dino_model.*` -> `teacher.*`; transformers v4 `CLIPVisionModel`
keys `clip_model.vision_model.*` lose the `vision_model.` level that v5 dropped). Training checkpoints
(`{'model': state_dict}`, DDP `module.`) are unwrapped by `load_state_dict_file`. MaskAlign has no transformers
counterpart. A DINO teacher saved by transformers v4 (`encoder.layer.N.attention.attention.query`) is not renamed
to v5's in-memory names: convert the student only (task feature-extraction) and give `teacher_name_or_path`.
"""

from ..models.maskalign.configuration_maskalign import MaskAlignConfig
from ..models.maskalign.modeling_maskalign import MaskAlignForPreTraining
from .common import ConversionError, check_source
from .vit import _fit_position_embeddings, encoder_config_kwargs, rename_state_dict

__all__ = ["SOURCES", "convert_state_dict", "infer_config", "config_from_transformers", "default_task",
           "MODEL_CLASSES", "teacher_config_from_state_dict"]

SOURCES = ("official",)
MODEL_CLASSES = {"pretraining": MaskAlignForPreTraining}
_TEACHER_PREFIXES = ("clip_model.vision_model.", "clip_model.", "dino_model.")


def _split(state_dict: dict) -> tuple[dict, dict, dict]:
    """(student, Dynamic Alignment, teacher) parts, `module.` removed, teacher keys already under `teacher.`."""
    student, alignment, teacher = {}, {}, {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith("distill_"):
            alignment[key] = value
            continue
        for prefix in _TEACHER_PREFIXES:
            if key.startswith(prefix):
                teacher["teacher." + key[len(prefix):]] = value
                break
        else:
            student[key] = value
    return student, alignment, teacher


def convert_state_dict(state_dict: dict, config: MaskAlignConfig | None, source: str) -> dict:
    """Official MaskAlign keys -> `MaskAlignForPreTraining` keys (`vit.*`, `distill_*`, `teacher.*`)."""
    check_source(source, SOURCES)
    student, alignment, teacher = _split(state_dict)
    out = _fit_position_embeddings(rename_state_dict(student, "official"), config)
    out.update(alignment)
    out.update(teacher)
    return out


def default_task(state_dict: dict, source: str) -> str:
    """The whole pre-training model if the checkpoint has the Dynamic Alignment heads and the teacher, a
    classifier if it has a head, else the student encoder."""
    keys = convert_state_dict(state_dict, None, source)
    if any(k.startswith("distill_heads.") for k in keys) and any(k.startswith("teacher.") for k in keys):
        return "pretraining"
    return "image-classification" if "classifier.weight" in keys else "feature-extraction"


def _head_type(converted: dict) -> str:
    if "distill_heads.0.weight" in converted:
        return "linear"
    middle = converted.get("distill_heads.0.1.weight")
    if "distill_heads.0.2.weight" not in converted:
        return "norm_linear"
    return "mlp2" if middle is not None else "mlp"


def teacher_config_from_state_dict(converted: dict) -> dict:
    """A `CLIPVisionConfig` dict read off the teacher's shapes (heads: width / 64, as the released CLIP towers)."""
    if "teacher.embeddings.class_embedding" not in converted:
        raise ConversionError("cannot read the teacher's config off the weights (only CLIP teachers); pass "
                              "teacher_config or teacher_name_or_path")
    patch = converted["teacher.embeddings.patch_embedding.weight"]
    hidden = patch.shape[0]
    positions = converted["teacher.embeddings.position_embedding.weight"].shape[0] - 1
    grid = round(positions ** 0.5)
    depth = 1 + max(int(k.split(".")[3]) for k in converted if k.startswith("teacher.encoder.layers."))
    return dict(model_type="clip_vision_model", hidden_size=hidden, num_hidden_layers=depth,
                num_attention_heads=max(1, hidden // 64), patch_size=patch.shape[-1], image_size=grid * patch.shape[-1],
                intermediate_size=converted["teacher.encoder.layers.0.mlp.fc1.weight"].shape[0],
                num_channels=patch.shape[1])


def infer_config(state_dict: dict, source: str, **overrides) -> MaskAlignConfig:
    """Student hyper-parameters off the shapes (see `conversion.vit.encoder_config_kwargs`), the Dynamic Alignment
    layout off `distill_*` (a square `distill_weights` is read as "linear"), the teacher off its weights (CLIP)
    unless `teacher_config` / `teacher_name_or_path` is given; the objective keeps the README recipe."""
    check_source(source, SOURCES)
    converted = convert_state_dict(state_dict, None, source)
    kwargs = encoder_config_kwargs(converted, source, overrides.get("num_attention_heads"))
    kwargs["position_embedding_type"] = "learned" if "classifier.weight" in converted else "sincos"
    head = converted.get("classifier.weight")
    kwargs["num_labels"] = head.shape[0] if head is not None else 0
    if any(k.startswith("distill_heads.") for k in converted):
        kwargs["head_type"] = _head_type(converted)
        weights = converted.get("distill_weights")
        kwargs["fusion_type"] = ("simple" if weights is None else
                                 "linear" if weights.shape[0] == weights.shape[1] == kwargs["num_hidden_layers"]
                                 else "sum")
    if any(k.startswith("teacher.") for k in converted) and not {"teacher_config", "teacher_name_or_path"} & set(
            overrides):
        kwargs["teacher_config"] = teacher_config_from_state_dict(converted)
    kwargs.update(overrides)
    return MaskAlignConfig(**kwargs)


def config_from_transformers(transformers_config: dict, **overrides) -> MaskAlignConfig:
    raise ConversionError("MaskAlign has no transformers implementation; convert an official checkpoint "
                          "(source 'official') or pass a zoo MaskAlignConfig config.json")
