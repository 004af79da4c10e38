"""Parity with the OFFICIAL MaskAlign code (OpenDriveLab/maskalign at 250d018, `models_pretrain.py`) through the stored
fixture from tests/fixtures/make_maskalign_official_fixture.py: a tiny student and a tiny random CLIP teacher (the
official `clip_model`, a transformers `CLIPVisionModel`, mapped to our `teacher.*` by `conversion/maskalign.py`),
weights perturbed with std 0.1, four settings of Dynamic Alignment / target norm / loss, a fixed visible set.
Compared at atol 1e-5: the teacher's last-layer [CLS] attention that drives attention-guided masking, every aligned
student feature (`get_student`), every teacher target (`get_teacher`) and the loss."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion import maskalign as maskalign_conversion
from hf_vision_zoo.conversion.common import ConversionError
from hf_vision_zoo.models.maskalign import MaskAlignForPreTraining

FIXTURES = Path(__file__).parents[2] / "fixtures" / "maskalign_official"
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())
ATOL = 1e-5


def load(name):
    return load_file(FIXTURES / f"{name}_state_dict.safetensors"), load_file(FIXTURES / f"{name}_io.safetensors")


def build(checkpoint, settings, teacher_config=None):
    config = maskalign_conversion.infer_config(
        checkpoint, "official", num_attention_heads=RECIPE["student"]["num_heads"], drop_path_rate=0.0,
        mask_ratio=RECIPE["mask_ratio"], **({"teacher_config": teacher_config} if teacher_config else {}),
        **settings)
    return convert_to_model("maskalign", checkpoint, config, "official", task="pretraining")


def to_official_order(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Our [CLS] + visible tokens (ascending patch order) -> the official order ([CLS] + tokens in `ids_keep` order)."""
    rank = torch.argsort(torch.argsort(ids_keep, dim=1), dim=1)
    visible = torch.gather(tokens[:, 1:], 1, rank.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    return torch.cat([tokens[:, :1], visible], dim=1)


@pytest.mark.parametrize("name", sorted(RECIPE["configs"]))
def test_matches_official_loss_and_aligned_features(name):
    checkpoint, io = load(name)
    settings = RECIPE["configs"][name]
    model = build(checkpoint, settings, teacher_config=RECIPE["teacher"])
    assert isinstance(model, MaskAlignForPreTraining)
    assert model.config.fusion_type == settings["fusion_type"] and model.config.head_type == settings["head_type"]
    ids_keep, pixel_values = io["ids_keep"], io["pixel_values"]
    mask = torch.ones(ids_keep.shape[0], model.config.num_patches, dtype=torch.bool).scatter(1, ids_keep, False)
    with torch.no_grad():
        out = model(pixel_values, mask=mask)
        _, attentions = model.teacher_forward(pixel_values)
    torch.testing.assert_close(attentions[-1][:, :, 0, 1:].mean(1), io["importance"], rtol=0, atol=ATOL)
    assert len(out.student_features) == len([k for k in io if k.startswith("student.")])
    for i, (student, teacher) in enumerate(zip(out.student_features, out.teacher_features)):
        torch.testing.assert_close(to_official_order(student, ids_keep), io[f"student.{i}"], rtol=0, atol=ATOL,
                                   msg=lambda m: f"student feature {i}: {m}")
        torch.testing.assert_close(to_official_order(teacher, ids_keep), io[f"teacher.{i}"], rtol=0, atol=ATOL,
                                   msg=lambda m: f"teacher target {i}: {m}")
    torch.testing.assert_close(out.loss, io["loss"], rtol=0, atol=ATOL)
    assert torch.equal(out.mask.bool(), mask)


def test_teacher_config_is_read_off_the_weights_and_keys_map_exactly():
    checkpoint, io = load("recipe")
    assert any(k.startswith("clip_model.") for k in checkpoint)
    # no teacher_config given: the CLIP teacher's shapes give it (zero missing / unexpected keys is checked by
    # convert_to_model's load_strict)
    model = build(checkpoint, RECIPE["configs"]["recipe"])
    teacher = model.config.teacher_config
    for key in ("hidden_size", "num_hidden_layers", "patch_size", "image_size", "intermediate_size"):
        assert teacher[key] == RECIPE["teacher"][key], key
    # a transformers v4 CLIPVisionModel layout (`clip_model.vision_model.*`) maps to the same weights
    legacy = {k.replace("clip_model.", "clip_model.vision_model.", 1): v for k, v in checkpoint.items()}
    converted = maskalign_conversion.convert_state_dict(legacy, model.config, "official")
    assert converted.keys() == model.state_dict().keys()
    assert maskalign_conversion.default_task(checkpoint, "official") == "pretraining"
    student_only = {k: v for k, v in checkpoint.items() if not k.startswith(("clip_model.", "distill_"))}
    assert maskalign_conversion.default_task(student_only, "official") == "feature-extraction"
    encoder = convert_to_model("maskalign", student_only, model.config, "official", task="feature-extraction")
    torch.testing.assert_close(encoder.blocks[0].attn.qkv.weight, checkpoint["blocks.0.attn.qkv.weight"])


def test_converter_rejects_other_formats():
    checkpoint, _ = load("recipe")
    with pytest.raises(ConversionError):
        maskalign_conversion.convert_state_dict(checkpoint, None, "timm")
    with pytest.raises(ConversionError, match="transformers"):
        maskalign_conversion.config_from_transformers({"model_type": "vit"})
    with pytest.raises(ConversionError, match="ViT"):
        maskalign_conversion.convert_state_dict({"foo.weight": torch.zeros(1)}, None, "official")
