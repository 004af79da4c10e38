"""conversion/convert_swin.py end to end: official, timm and transformers checkpoints become zoo folders that load
through the Auto classes and pipeline() with the original's outputs; bad checkpoints fail clearly and leave nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import transformers
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skdata
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

import hf_vision_zoo  # noqa: F401  (registers zoo_swin with the Auto classes)
from hf_vision_zoo.conversion import ConversionError, load_state_dict_file

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "conversion" / "convert_swin.py"
OFFICIAL = REPO / "tests" / "fixtures" / "swin_official"
TINY_TIMM = dict(img_size=32, patch_size=2, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4,
                 num_classes=5)


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def _timm_model(**overrides):
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **{**TINY_TIMM, **overrides})
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def test_timm_pth_with_model_wrapper_to_auto_and_pipeline(tmp_path):
    reference = _timm_model()
    checkpoint = tmp_path / "swin.pth"
    torch.save({"model": reference.state_dict(), "epoch": 3}, checkpoint)  # the official training wrapper
    out = tmp_path / "converted"
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--image-size", 32, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in out.iterdir()}

    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert type(model).__name__ == "SwinForImageClassification" and model.config.model_type == "zoo_swin"
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, reference(pixels), atol=1e-5, rtol=0)

    image = Image.fromarray(skdata.chelsea())
    processed = AutoImageProcessor.from_pretrained(out)(image, return_tensors="pt").pixel_values
    assert processed.shape == (1, 3, 32, 32)
    scores = torch.softmax(reference(processed), -1)[0]
    predictions = pipeline("image-classification", model=str(out), top_k=5)(image)
    by_label = {p["label"]: p["score"] for p in predictions}
    for index, score in enumerate(scores.tolist()):
        assert by_label[model.config.id2label[index]] == pytest.approx(score, abs=1e-5)

    features = pipeline("image-feature-extraction", model=str(out))(image, return_tensors=True)
    assert features.shape[-1] == 32  # 16 * 2 channels after the last stage
    assert isinstance(AutoModel.from_pretrained(out), hf_vision_zoo.SwinModel)


def test_official_checkpoint(tmp_path):
    tensors = load_file(str(OFFICIAL / "tiny_default_rules.safetensors"))
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    checkpoint = tmp_path / "official.pth"
    torch.save({"model": state}, checkpoint)
    out = tmp_path / "converted"
    result = run_script("--source", "official", "--checkpoint", checkpoint, "--image-size", 56, "--output", out)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=1e-5, rtol=0)


def test_transformers_folder_with_config(tmp_path):
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                                     window_size=4, num_labels=3, id2label={0: "cat", 1: "dog", 2: "owl"},
                                     label2id={"cat": 0, "dog": 1, "owl": 2})
    reference = transformers.SwinForImageClassification(config).eval()
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    reference.save_pretrained(tmp_path / "hf")
    out = tmp_path / "converted"
    result = run_script("--source", "transformers", "--checkpoint", tmp_path / "hf" / "model.safetensors",
                        "--config", tmp_path / "hf" / "config.json", "--output", out)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.id2label == {0: "cat", 1: "dog", 2: "owl"}
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, reference(pixels).logits, atol=1e-5, rtol=0)


def test_variant_swin_tiny_from_timm(tmp_path):
    """A full published variant: Swin-T weights from timm, converted with --variant, equal logits."""
    torch.manual_seed(0)
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    checkpoint = tmp_path / "swin_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    out = tmp_path / "swin-tiny"
    result = run_script("--source", "timm", "--checkpoint", checkpoint,
                        "--variant", "swin_tiny_patch4_window7_224.ms_in1k", "--output", out)
    assert result.returncode == 0, result.stderr
    assert "28,288,354 parameters" in result.stdout
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    assert processor.crop_size["height"] == 224 and processor.size["shortest_edge"] == 256
    pixels = processor(Image.fromarray(skdata.astronaut()), return_tensors="pt").pixel_values
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, reference(pixels), atol=1e-4, rtol=1e-5)


def _assert_failed_cleanly(result, out, *phrases):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "a temporary folder was left behind"


def test_other_architecture_is_rejected(tmp_path):
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=3)
    checkpoint = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), checkpoint)
    out = tmp_path / "converted"
    _assert_failed_cleanly(run_script("--source", "timm", "--checkpoint", checkpoint, "--output", out), out,
                           "does not look like a Swin checkpoint")


def test_wrong_source_format_is_named(tmp_path):
    checkpoint = tmp_path / "swin.pth"
    torch.save(_timm_model().state_dict(), checkpoint)
    out = tmp_path / "converted"
    _assert_failed_cleanly(run_script("--source", "transformers", "--checkpoint", checkpoint, "--output", out), out,
                           "not source='transformers'")


def test_config_that_does_not_fit_lists_missing_and_unexpected_keys(tmp_path):
    checkpoint = tmp_path / "swin.pth"
    torch.save(_timm_model().state_dict(), checkpoint)
    out = tmp_path / "converted"
    result = run_script("--source", "timm", "--checkpoint", checkpoint,
                        "--variant", "swin_small_patch4_window7_224.ms_in1k", "--output", out)
    _assert_failed_cleanly(result, out, "missing", "does not fit the model config")


def test_truncated_and_empty_checkpoints(tmp_path):
    checkpoint = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() for k, v in _timm_model().state_dict().items()}, str(checkpoint))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for bad, phrase in ((truncated, "Could not read checkpoint"), (empty, "is empty"),
                        (tmp_path / "absent.pth", "does not exist")):
        out = tmp_path / f"out-{bad.stem}"
        _assert_failed_cleanly(run_script("--source", "timm", "--checkpoint", bad, "--output", out), out, phrase)


def test_pickled_code_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    checkpoint = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": Exploit()}, checkpoint)
    with pytest.raises(ConversionError, match="Could not read checkpoint"):
        load_state_dict_file(checkpoint)
    assert not marker.exists()


def test_existing_output_is_not_overwritten_without_flag(tmp_path):
    checkpoint = tmp_path / "swin.pth"
    torch.save(_timm_model().state_dict(), checkpoint)
    out = tmp_path / "converted"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--image-size", 32, "--output", out)
    assert result.returncode != 0 and "--overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "user data"
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--image-size", 32, "--output", out,
                        "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
