"""PPMA vs the official code (zhongchenzhao/PPMA @ eb6491e): stored official outputs, converted official weights.

The fixtures (tests/fixtures/ppma_official/, made by tests/fixtures/make_ppma_official_fixture.py) hold the official
model's random weights (perturbed with std 0.1, BatchNorm statistics randomised), a non-square input batch (a real
photo and noise) and the official outputs. Each test converts the stored state dict with the zoo converter (zero
missing / unexpected keys) and compares outputs at atol 1e-5.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion.ppma import convert_state_dict, infer_config
from hf_vision_zoo.models.ppma import PpmaConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ppma_official"
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())


def _load(name: str):
    tensors = load_file(str(FIXTURES / f"{name}.safetensors"))
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return RECIPE["fixtures"][name], state, tensors


def _config(kwargs: dict, input_size, **extra) -> PpmaConfig:
    fields = ("embed_dims", "depths", "num_heads", "mlp_ratios", "chunkwise_recurrents", "drop_path_rate",
              "projection")
    config = {k: kwargs[k] for k in fields if k in kwargs}
    config["layerscales"] = kwargs.get("layerscales", [False] * len(kwargs["depths"]))
    config["layer_init_values"] = kwargs.get("layer_init_values", 1e-6)
    return PpmaConfig(image_size=list(input_size), num_labels=kwargs["num_classes"], **config, **extra)


@pytest.mark.parametrize("name", ["axial_full_layerscale", "tiny_t_layout"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_classifier_matches_official(name, attn_implementation):
    info, state, tensors = _load(name)
    assert info["official_class"] == "PPMAViT" and len(state) == info["num_state_dict_entries"]
    config = _config(info["constructor_kwargs"], info["input_size"])
    config._attn_implementation = attn_implementation
    model = convert_to_model("ppma", state, config, "official")
    # every official tensor but the rotary buffers (one per stage) became a zoo tensor
    assert len(model.state_dict()) == len(state) - len(config.depths)
    x = tensors["pixel_values"]
    with torch.no_grad():
        out = model(x)
        pre_logits = model.head(model.ppma(x).last_hidden_state)
    torch.testing.assert_close(out.logits, tensors["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(pre_logits, tensors["features"], atol=1e-5, rtol=0)
    assert out.logits.abs().max() > 0.1  # a meaningful signal, not a collapsed output


def test_backbone_matches_official_detection_backbone():
    """Backbone_PPMAViT (the mmdet/mmseg backbone): its keys under `backbone.` as in an mmseg checkpoint, decode
    head keys alongside, converted into PpmaBackbone with all four stages."""
    info, state, tensors = _load("backbone")
    kwargs = info["constructor_kwargs"]
    config = _config(kwargs, info["input_size"], out_features=["stage1", "stage2", "stage3", "stage4"])
    mmseg_like = {f"backbone.{k}": v for k, v in state.items()}
    mmseg_like["decode_head.conv_seg.weight"] = torch.zeros(3, 4, 1, 1)
    model = convert_to_model("ppma", mmseg_like, config, "official", task="backbone")
    with torch.no_grad():
        maps = model(tensors["pixel_values"]).feature_maps
    assert len(maps) == 4
    for i, fmap in enumerate(maps):
        torch.testing.assert_close(fmap, tensors[f"feature_map.{i}"], atol=1e-5, rtol=0)


def test_infer_config_reads_the_fixture_shapes():
    info, state, _ = _load("axial_full_layerscale")
    kwargs = info["constructor_kwargs"]
    config = infer_config(state, "official", image_size=48, chunkwise_recurrents=kwargs["chunkwise_recurrents"])
    for field in ("embed_dims", "depths", "num_heads", "mlp_ratios", "layerscales"):
        assert getattr(config, field) == list(kwargs[field]), field
    assert config.num_labels == kwargs["num_classes"] and config.projection == kwargs["projection"]
    assert convert_to_model("ppma", state, config, "official") is not None


def test_converter_rejects_other_checkpoints_and_mismatched_configs():
    info, state, _ = _load("tiny_t_layout")
    with pytest.raises(ConversionError, match="PPMA"):
        convert_state_dict({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, PpmaConfig(), "official")
    with pytest.raises(ConversionError, match="source"):
        convert_state_dict(state, PpmaConfig(), "timm")
    # same key names, other head split: the stored rotary frequencies no longer fit
    config = _config(info["constructor_kwargs"], info["input_size"])
    wrong = PpmaConfig(**{**config.to_diff_dict(), "num_heads": [4, 4, 4, 4]})
    with pytest.raises(ConversionError, match="rotary"):
        convert_state_dict(state, wrong, "official")
    # a wrong depth leaves missing/unexpected keys, reported by name
    fewer = PpmaConfig(**{**config.to_diff_dict(), "depths": [1, 1, 1, 1]})
    with pytest.raises(ConversionError, match="unexpected"):
        convert_to_model("ppma", state, fewer, "official")
