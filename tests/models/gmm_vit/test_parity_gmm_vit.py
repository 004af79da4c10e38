"""The zoo's GMM-ViT is the official one: converted official weights (GMM, ELM and the unmasked baseline, tiny
configs, parameters perturbed with std 0.1) give the official logits at 1e-5, and the layer mask equals the official
`fn.mask`. Fixtures: tests/fixtures/gmm_vit_official (recipe.json; made by make_gmm_vit_official_fixture.py)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import ConversionError, build_config, convert_to_model
from hf_vision_zoo.conversion import gmm_vit as converter

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gmm_vit_official"
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())
ATOL = 1e-5


def _fixture(name: str):
    tensors = load_file(str(FIXTURES / f"{name}.safetensors"))
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return state_dict, tensors


def _convert(name: str, task: str = "image-classification"):
    state_dict, tensors = _fixture(name)
    heads = RECIPE["configs"][name]["heads"]
    overrides = {} if name == "gmm" else {"num_attention_heads": heads}
    config = build_config("gmm_vit", state_dict, "official", **overrides)
    return convert_to_model("gmm_vit", state_dict, config, "official", task=task), tensors


@pytest.mark.parametrize("name", ["gmm", "elm", "none"])
def test_official_logits(name):
    model, tensors = _convert(name)
    expected_type = {"gmm": "gmm", "elm": "elm", "none": "none"}[name]
    assert model.config.attention_mask_type == expected_type
    assert model.config.class_token == (name == "none")
    with torch.no_grad():
        logits = model(tensors["pixel_values"]).logits
    torch.testing.assert_close(logits, tensors["logits"], atol=ATOL, rtol=0)
    # the outputs are far from trivial: a wrong mask or a missing tensor would move them by more than ATOL
    assert tensors["logits"].abs().max() > 0.5


@pytest.mark.parametrize("name", ["gmm", "elm"])
def test_layer_mask_equals_official(name):
    model, tensors = _convert(name)
    with torch.no_grad():
        weights = model.vit.blocks[0].attn.mask.weights()
    expected = tensors["layer0_mask"]
    torch.testing.assert_close(weights.expand_as(expected), expected, atol=1e-6, rtol=1e-6)


def test_mask_multiplies_the_scores_before_softmax():
    """Removing the mask (or applying it after the softmax) changes the official logits: the test above would
    notice a wrong placement."""
    model, tensors = _convert("gmm")
    for block in model.vit.blocks:
        block.attn.mask.alpha.data.fill_(0.0)  # mask 0 -> uniform attention
    with torch.no_grad():
        logits = model(tensors["pixel_values"]).logits
    assert (logits - tensors["logits"]).abs().max() > 1e-2


def test_feature_extraction_conversion():
    model, tensors = _convert("gmm", task="feature-extraction")
    with torch.no_grad():
        pooled = model(tensors["pixel_values"]).pooler_output
    assert pooled.shape == (2, RECIPE["configs"]["gmm"]["dim"])


def test_conversion_rejects_mismatched_mask_grid():
    state_dict, _ = _fixture("gmm")
    config = build_config("gmm_vit", state_dict, "official")
    wrong = config.to_dict()
    wrong.pop("model_type", None)
    wrong.pop("transformers_version", None)
    from hf_vision_zoo.models.gmm_vit import GmmVitConfig

    small = GmmVitConfig(**{**{k: v for k, v in wrong.items() if k in GmmVitConfig.__dataclass_fields__},
                            "image_size": 16})
    with pytest.raises(ConversionError, match="mask grid doesn't match the token grid"):
        converter.convert_state_dict(state_dict, small, "official")


def test_conversion_errors_are_clear():
    state_dict, _ = _fixture("elm")
    with pytest.raises(ConversionError, match="num_attention_heads"):
        converter.infer_config(state_dict, "official")
    with pytest.raises(ConversionError, match="Unknown source"):
        converter.infer_config(state_dict, "timm")
    with pytest.raises(ConversionError, match="Not an official GMM-ViT"):
        converter.convert_state_dict({"blocks.0.attn.qkv.weight": torch.zeros(3, 1)}, None, "official")
    with pytest.raises(ConversionError, match="transformers has no GMM-ViT"):
        converter.config_from_transformers({})
    bad = dict(state_dict, **{"transformer.layers.0.0.fn.extra": torch.zeros(1)})
    config = converter.infer_config(state_dict, "official", num_attention_heads=2)
    with pytest.raises(ConversionError, match="Unknown key"):
        converter.convert_state_dict(bad, config, "official")


def test_convert_script_writes_a_loadable_folder(tmp_path):
    """The official checkpoint format (`{'model_state_dict': ...}` saved by main.py) through the script."""
    import importlib.util

    from transformers import AutoModelForImageClassification

    state_dict, tensors = _fixture("gmm")
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model_state_dict": state_dict, "epoch": 3, "optimizer_state_dict": {}}, checkpoint)
    script = Path(__file__).parents[3] / "conversion" / "convert_gmm_vit.py"
    spec = importlib.util.spec_from_file_location("convert_gmm_vit", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--source", "official", "--checkpoint", str(checkpoint), "--output",
                        str(tmp_path / "out")]) == 0
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=ATOL, rtol=0)
