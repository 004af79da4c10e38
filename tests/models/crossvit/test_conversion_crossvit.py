"""CrossViT conversion end to end: official (stored fixture) and timm checkpoints become zoo folders that load
through AutoModelForImageClassification and pipeline() with the original's outputs; bad checkpoints fail clearly and
leave nothing behind."""

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

import hf_vision_zoo  # noqa: F401  (registers zoo_crossvit with the Auto classes)
from hf_vision_zoo import registry
from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion.crossvit import config_from_transformers, convert_state_dict, infer_config
from hf_vision_zoo.models.crossvit import CrossVitConfig

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "conversion" / "convert_crossvit.py"
FIXTURES = REPO / "tests" / "fixtures" / "crossvit_official"
# a small timm CrossVit: 48 px input, branch 1 at 32 px, patches 12 / 16 (so the dagger stem exists too)
TINY_TIMM = dict(img_size=48, img_scale=(1.0, 32 / 48 + 1e-9), patch_size=(12, 16), embed_dim=(16, 32),
                 depth=((1, 2, 0), (1, 2, 0)), num_heads=(2, 2), mlp_ratio=(2, 2, 1), num_classes=5)


def _script_main():
    spec = importlib.util.spec_from_file_location("convert_crossvit_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_script(*args) -> subprocess.CompletedProcess:
    """Run conversion/convert_crossvit.py's `main` in this process (a subprocess would spend ~15 s importing)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _script_main()([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


@pytest.mark.slow
def test_script_runs_as_a_command(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "--source" in result.stdout and "crossvit_tiny_224" in result.stdout


def _timm_model(**overrides):
    from timm.models.crossvit import CrossVit

    torch.manual_seed(0)
    model = CrossVit(**{**TINY_TIMM, **overrides})
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


@pytest.mark.parametrize("multi_conv", [False, True], ids=["plain", "dagger"])
def test_timm_checkpoint_to_auto_and_pipeline(tmp_path, photo, multi_conv):
    reference = _timm_model(multi_conv=multi_conv)
    checkpoint = tmp_path / "crossvit.pth"
    torch.save({"model": reference.state_dict(), "epoch": 1}, checkpoint)
    out = tmp_path / "converted"
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--num-heads", 2, 2, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout

    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert type(model).__name__ == "CrossVitForImageClassification" and model.config.model_type == "zoo_crossvit"
    assert model.config.image_size == [48, 32] and model.config.multi_conv == multi_conv
    processor = AutoImageProcessor.from_pretrained(out)
    assert processor.crop_size == {"height": 48, "width": 48} and processor.size == {"shortest_edge": 54}
    pixels = processor(photo, return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = reference(pixels)
        torch.testing.assert_close(model(pixels).logits, expected, atol=1e-5, rtol=0)
    scores = expected.softmax(-1)[0]
    predictions = pipeline("image-classification", model=str(out), top_k=5)(photo)
    for prediction in predictions:
        index = model.config.label2id[prediction["label"]]
        assert abs(prediction["score"] - scores[index].item()) < 1e-5
    features = pipeline("image-feature-extraction", model=str(out))(photo, return_tensors=True)
    assert features.shape == (1, 1 + 16 + 4, 48)
    base = AutoModel.from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(base(pixels).pooler_output, reference.forward_head(
            reference.forward_features(pixels), pre_logits=True), atol=1e-5, rtol=0)


def test_official_checkpoint_to_auto_and_pipeline(tmp_path, photo):
    """The official code's state dict (stored fixture) converts, loads through the Auto classes and pipeline, and
    reproduces the official logits."""
    recipe = json.loads((FIXTURES / "recipe.json").read_text())
    spec = recipe["fixtures"]["tiny_plain"]
    tensors = load_file(str(FIXTURES / spec["file"]))
    checkpoint = tmp_path / "crossvit_official.safetensors"
    save_file({k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}, checkpoint)
    out = tmp_path / "official"
    result = run_script("--source", "official", "--checkpoint", checkpoint, "--num-heads", 2, 2, "--output", out)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.image_size == spec["constructor_kwargs"]["img_size"]
    assert model.config.depth == spec["constructor_kwargs"]["depth"]
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=1e-5, rtol=0)
    predictions = pipeline("image-classification", model=str(out), top_k=5)(photo)
    processed = AutoImageProcessor.from_pretrained(out)(photo, return_tensors="pt").pixel_values
    with torch.no_grad():
        scores = model(processed).logits.softmax(-1)[0]
    assert [round(p["score"], 5) for p in predictions] == [round(s, 5) for s in scores.sort(descending=True)[0].tolist()]


@pytest.mark.slow
def test_variant_conversion_uses_registered_config_and_preprocessing(tmp_path):
    reference = timm.create_model("crossvit_tiny_240", pretrained=False).eval()
    checkpoint = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, checkpoint)
    out = tmp_path / "tiny"
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--variant", "crossvit_tiny_240.in1k",
                        "--output", out)
    assert result.returncode == 0, result.stderr
    assert "7,014,800 parameters" in result.stdout
    processor = AutoImageProcessor.from_pretrained(out)
    assert processor.crop_size == {"height": 240, "width": 240} and processor.size == {"shortest_edge": 274}


@pytest.mark.parametrize("name", ["crossvit_tiny_240.in1k", "crossvit_15_dagger_408.in1k"])
def test_infer_config_reads_published_shapes(name):
    """Read off timm's own definitions (built on the meta device), the inferred config is the registered one."""
    config = registry.get_config(name)
    with torch.device("meta"):
        reference = timm.create_model(name.split(".")[0], pretrained=False)
    inferred = infer_config(reference.state_dict(), "timm")
    for field in ("image_size", "patch_size", "embed_dim", "depth", "num_heads", "multi_conv", "qkv_bias",
                  "num_labels"):
        assert getattr(inferred, field) == getattr(config, field), field
    assert inferred.mlp_ratio == config.mlp_ratio[:2]


def test_bad_checkpoints_fail_clearly_and_write_nothing(tmp_path):
    reference = _timm_model()
    state = reference.state_dict()
    out = tmp_path / "out"
    # a Swin-like (not CrossViT) state dict
    not_crossvit = tmp_path / "other.pth"
    torch.save({"layers.0.blocks.0.attn.relative_position_bias_table": torch.zeros(3, 2)}, not_crossvit)
    result = run_script("--source", "timm", "--checkpoint", not_crossvit, "--output", out)
    assert result.returncode == 1 and "does not look like a CrossViT" in result.stderr
    # the timm layout given as official
    timm_file = tmp_path / "timm.pth"
    torch.save(state, timm_file)
    result = run_script("--source", "official", "--checkpoint", timm_file, "--output", out)
    assert result.returncode == 1 and "timm layout" in result.stderr
    # a missing tensor
    broken = dict(state)
    broken.pop("blocks.0.fusion.0.attn.wk.weight")
    with pytest.raises(ConversionError, match="wk/wv"):
        convert_state_dict(broken, None, "timm")
    broken = dict(state)
    broken.pop("norm.1.weight")
    with pytest.raises(ConversionError, match="1 missing: crossvit.norms.1.weight"):
        convert_to_model("crossvit", broken, infer_config(state, "timm", num_heads=[2, 2]), "timm")
    # a config that does not fit the weights
    wrong = CrossVitConfig(image_size=[48, 32], patch_size=[12, 16], embed_dim=[16, 32], depth=[[1, 2, 0]] * 2,
                           num_heads=[2, 2], mlp_ratio=[4, 4], num_labels=5)
    with pytest.raises(ConversionError, match="shape mismatches"):
        convert_to_model("crossvit", state, wrong, "timm")
    # a truncated file
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(timm_file.read_bytes()[:1000])
    result = run_script("--source", "timm", "--checkpoint", truncated, "--output", out)
    assert result.returncode == 1 and "Could not read checkpoint" in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    with pytest.raises(ConversionError, match="transformers has no CrossViT"):
        config_from_transformers({})
    with pytest.raises(ConversionError, match="source"):
        convert_state_dict(state, None, "transformers")
