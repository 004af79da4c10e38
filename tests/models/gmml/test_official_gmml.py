"""Parity with the OFFICIAL GMML code (Sara-Ahmed/GMML at 1882712, `vision_transformer.py` + the loss of
`main.py::train_one_epoch`) through the fixtures of tests/fixtures/make_gmml_official_fixture.py: the official
state dicts (FullpiplineSiT layout) are converted by `conversion/gmml.py` with zero missing / unexpected keys, the
official corruption (mask + corrupted images, produced by the official `GMML_drop_rand_patches` /
`GMML_replace_list`) is given explicitly, and the backbone features, the reconstruction and the L1 loss (drop_only
1 and 0) must match at atol 1e-5. Two configurations: pixel blocks with noise / other-image replacement (official
defaults) and patch-aligned blocks with noise-zeros-replace."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import CONVERTERS, ConversionError, convert_to_model
from hf_vision_zoo.conversion import gmml as gmml_conversion
from hf_vision_zoo.models.gmml import GmmlForPreTraining, GmmlModel

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gmml_official"
ATOL = 1e-5
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())


def load_case(name):
    tensors = load_file(FIXTURES / f"gmml_{name}.safetensors")
    prefix = f"{name}.state_dict."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    data = {k[len(name) + 1:]: v for k, v in tensors.items() if not k.startswith(prefix)}
    return state, data


def build(name, **overrides):
    state, data = load_case(name)
    case = RECIPE["cases"][name]
    config = gmml_conversion.infer_config(state, "official", num_attention_heads=case["num_heads"],
                                          recons_blocks=case["recons_blocks"], drop_type=case["drop_type"],
                                          drop_align=case["drop_align"], **overrides)
    return convert_to_model("gmml", state, config, "official", task="pretraining"), state, data


def test_recipe_is_recorded():
    assert RECIPE["commit"] == "1882712" and RECIPE["official_repo"].endswith("Sara-Ahmed/GMML")
    assert RECIPE["cases"]["a"]["drop_type"] == "noise" and RECIPE["cases"]["a"]["drop_align"] == 1
    assert "gmml" in CONVERTERS


@pytest.mark.parametrize("name", ["a", "b"])
def test_converted_config_and_keys(name):
    model, state, _ = build(name)  # convert_to_model loads strictly: zero missing / zero unexpected keys
    case = RECIPE["cases"][name]
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size) == (
        case["embed_dim"], case["depth"], case["patch_size"])
    assert config.image_size == case["image_size"] and config.recons_blocks == [
        int(b) for b in case["recons_blocks"].split("-")]
    torch.testing.assert_close(model.head.conv_transpose.weight, state["head_recons.convTrans.weight"])
    torch.testing.assert_close(model.head.mlp[4].weight, state["head_recons.mlp.4.weight"])
    torch.testing.assert_close(model.vit.layernorm.weight, state["backbone.norm.weight"])


@pytest.mark.parametrize("name", ["a", "b"])
def test_reconstruction_and_loss_match_official(name):
    model, _, data = build(name)
    with torch.no_grad():
        out = model(data["pixel_values"], corrupted_pixel_values=data["corrupted_pixel_values"], mask=data["mask"])
        features, _ = model.encode(data["corrupted_pixel_values"])
    torch.testing.assert_close(features, data["features"], rtol=0, atol=ATOL)
    torch.testing.assert_close(out.reconstruction, data["reconstruction"], rtol=0, atol=ATOL)
    torch.testing.assert_close(out.loss.reshape(1), data["loss"], rtol=0, atol=ATOL)
    assert torch.equal(out.mask, data["mask"]) and torch.equal(out.corrupted_pixel_values,
                                                               data["corrupted_pixel_values"])


def test_loss_over_all_pixels_matches_official():
    model, _, data = build("a", drop_only=False)
    with torch.no_grad():
        out = model(data["pixel_values"], corrupted_pixel_values=data["corrupted_pixel_values"], mask=data["mask"])
    torch.testing.assert_close(out.loss.reshape(1), data["loss_all_pixels"], rtol=0, atol=ATOL)


def test_patch_mask_input_equals_pixel_mask_for_aligned_blocks():
    """Case b uses patch-aligned blocks: the (B, N) patch mask is the same corruption as the pixel mask."""
    model, _, data = build("b")
    patch = model.config.patch_size
    grid = data["mask"].reshape(4, 6, patch, 6, patch)
    assert torch.equal(grid.all(dim=4).all(dim=2), grid.any(dim=4).any(dim=2)), "blocks are not patch aligned"
    with torch.no_grad():
        out = model(data["pixel_values"], corrupted_pixel_values=data["corrupted_pixel_values"],
                    mask=grid.any(dim=4).any(dim=2).flatten(1))
    torch.testing.assert_close(out.loss.reshape(1), data["loss"], rtol=0, atol=ATOL)


def test_official_corruption_is_consistent_with_its_mask():
    """Outside the official mask the corrupted image is the clean one; inside, it was changed (or copied from an
    image that happens to agree there)."""
    for name in ("a", "b"):
        _, data = load_case(name)
        keep = ~data["mask"].unsqueeze(1).expand_as(data["pixel_values"])
        assert torch.equal(data["corrupted_pixel_values"][keep], data["pixel_values"][keep])


def test_encoder_only_conversion_and_bad_checkpoints(tmp_path):
    state, data = load_case("a")
    case = RECIPE["cases"]["a"]
    assert gmml_conversion.default_task(state, "official") == "pretraining"
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    assert gmml_conversion.default_task(backbone, "official") == "feature-extraction"
    config = gmml_conversion.infer_config(backbone, "official", num_attention_heads=2,
                                          recons_blocks=case["recons_blocks"])
    encoder = convert_to_model("gmml", backbone, config, "official", task="feature-extraction")
    assert isinstance(encoder, GmmlModel)
    ddp = {"module." + k: v for k, v in state.items()}  # a DistributedDataParallel state dict
    path = tmp_path / "checkpoint.pth"
    import argparse
    torch.save({"SiT_model": ddp, "epoch": 3, "args": argparse.Namespace(drop_perc=0.75)}, path)
    loaded = gmml_conversion.load_official_checkpoint(path)
    model = convert_to_model("gmml", loaded, build("a")[0].config, "official", task="pretraining")
    assert isinstance(model, GmmlForPreTraining)
    with pytest.raises(ConversionError, match="no backbone"):
        gmml_conversion.convert_state_dict({"head_recons.mlp.0.weight": torch.zeros(1)}, None, "official")
    with pytest.raises(ConversionError, match="source"):
        gmml_conversion.convert_state_dict(state, None, "timm")
    with pytest.raises(ConversionError, match="transformers"):
        gmml_conversion.config_from_transformers({})
    with pytest.raises(ConversionError, match="recons_blocks"):  # a 4-block backbone with the 12-block default
        gmml_conversion.infer_config(state, "official", num_attention_heads=2)
    (tmp_path / "truncated.pth").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConversionError, match="Could not read"):
        gmml_conversion.load_official_checkpoint(tmp_path / "truncated.pth")


def test_conversion_script_end_to_end(tmp_path, capsys):
    """conversion/convert_gmml.py: an official training checkpoint (DDP `module.` keys under `SiT_model`, with the
    argparse `args`) -> a folder that AutoModelForPreTraining / AutoModel load; the reloaded model reproduces the
    official loss; a failed conversion writes nothing."""
    import argparse
    import importlib.util

    from transformers import AutoModel, AutoModelForPreTraining

    script = Path(__file__).parents[3] / "conversion" / "convert_gmml.py"
    spec = importlib.util.spec_from_file_location("convert_gmml", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state, data = load_case("a")
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"SiT_model": {"module." + k: v for k, v in state.items()}, "epoch": 1,
                "args": argparse.Namespace(model="vit_tiny", drop_perc=0.75)}, checkpoint)
    output = tmp_path / "gmml"
    assert module.main(["--checkpoint", str(checkpoint), "--num-heads", "2", "--recons-blocks", "2-3-4",
                        "--output", str(output)]) == 0
    assert "0 missing / 0 unexpected" in capsys.readouterr().out
    model = AutoModelForPreTraining.from_pretrained(output).eval()
    assert isinstance(model, GmmlForPreTraining) and isinstance(AutoModel.from_pretrained(output), GmmlModel)
    with torch.no_grad():
        out = model(data["pixel_values"], corrupted_pixel_values=data["corrupted_pixel_values"], mask=data["mask"])
    torch.testing.assert_close(out.loss.reshape(1), data["loss"], rtol=0, atol=ATOL)
    bad = tmp_path / "bad"
    assert module.main(["--checkpoint", str(checkpoint), "--num-heads", "2", "--output", str(bad)]) == 1
    assert "recons_blocks" in capsys.readouterr().err and not bad.exists()
