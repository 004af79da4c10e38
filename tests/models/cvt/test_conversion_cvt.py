"""conversion/convert_cvt.py end to end: official and transformers checkpoints become zoo folders that load through
AutoModelForImageClassification, `hf_vision_zoo.load_backbone` and pipeline() with the original's outputs; bad
checkpoints fail clearly and leave nothing behind."""

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skdata
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

import hf_vision_zoo
from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion.cvt import config_from_official_spec, config_from_transformers, convert_state_dict

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "conversion" / "convert_cvt.py"
OFFICIAL = REPO / "tests" / "fixtures" / "cvt_official"


def run_script(*args) -> subprocess.CompletedProcess:
    """The script in a fresh interpreter (slow on a loaded machine: used once, for the end-to-end case)."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def run_main(*args) -> subprocess.CompletedProcess:
    """The script's `main` in this process, with its exit code and output captured like `run_script`."""
    spec = importlib.util.spec_from_file_location("convert_cvt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = module.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def _official(name="cvt13_layout_quickgelu"):
    tensors = load_file(str(OFFICIAL / f"{name}.safetensors"))
    entry = json.loads((OFFICIAL / "recipe.json").read_text())["fixtures"][name]
    return tensors, {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}, entry


def _transformers_model(num_labels=3):
    torch.manual_seed(0)
    id2label = {i: name for i, name in enumerate(["cat", "dog", "owl", "fox", "elk"][:num_labels])}
    config = transformers.CvtConfig(embed_dim=[16, 32], num_heads=[1, 2], depth=[1, 2], patch_sizes=[7, 3],
                                    patch_stride=[4, 2], patch_padding=[2, 1], mlp_ratio=[4.0, 4.0],
                                    attention_drop_rate=[0.0, 0.0], drop_rate=[0.0, 0.0], drop_path_rate=[0.0, 0.0],
                                    qkv_bias=[True, True], cls_token=[False, True],
                                    qkv_projection_method=["dw_bn", "dw_bn"], kernel_qkv=[3, 3], padding_kv=[1, 1],
                                    stride_kv=[2, 2], padding_q=[1, 1], stride_q=[1, 1], num_labels=num_labels,
                                    id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = transformers.CvtForImageClassification(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


@pytest.mark.slow
def test_official_checkpoint_to_auto_backbone_and_pipeline(tmp_path):
    """The official training wrapper {"model": ...} -> script (shapes read off the checkpoint) -> Auto classes."""
    tensors, state, entry = _official()
    checkpoint = tmp_path / "CvT-tiny.pth"
    torch.save({"model": state, "epoch": 1}, checkpoint)
    out = tmp_path / "converted"
    result = run_script("--source", "official", "--checkpoint", checkpoint, "--image-size", 56, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert type(model).__name__ == "CvtForImageClassification" and model.config.model_type == "zoo_cvt"
    # heads = width / 64 cannot be read off the shapes; the fixture's spec says [1, 2, 2]
    assert model.config.num_heads == [1, 1, 1] and model.config.hidden_act == "quick_gelu"
    fixed = config_from_official_spec(entry["spec"], num_labels=entry["num_classes"], image_size=56)
    fixed.save_pretrained(tmp_path / "spec")
    out2 = tmp_path / "converted-with-config"
    result = run_main("--source", "official", "--checkpoint", checkpoint, "--config",
                        tmp_path / "spec" / "config.json", "--output", out2)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageClassification.from_pretrained(out2).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=1e-5, rtol=0)

    backbone = hf_vision_zoo.load_backbone(str(out2), out_features=["stage1", "stage3"]).eval()
    with torch.no_grad():
        maps = backbone(tensors["pixel_values"]).feature_maps
    torch.testing.assert_close(maps[0], tensors["stage0"], atol=1e-5, rtol=0)
    torch.testing.assert_close(maps[1], tensors["stage2"], atol=1e-5, rtol=0)

    image = Image.fromarray(skdata.chelsea())
    processed = AutoImageProcessor.from_pretrained(out2)(image, return_tensors="pt").pixel_values
    assert processed.shape == (1, 3, 56, 56)
    with torch.no_grad():
        scores = model(processed).logits.softmax(-1)[0]
    predictions = pipeline("image-classification", model=str(out2), top_k=10)(image)
    by_label = {p["label"]: p["score"] for p in predictions}
    for index, score in enumerate(scores.tolist()):
        assert by_label[model.config.id2label[index]] == pytest.approx(score, abs=1e-5)
    assert isinstance(AutoModel.from_pretrained(out2), hf_vision_zoo.models.cvt.CvtModel)


def test_transformers_folder_with_config(tmp_path):
    reference = _transformers_model()
    reference.save_pretrained(tmp_path / "hf")
    out = tmp_path / "converted"
    result = run_main("--source", "transformers", "--checkpoint", tmp_path / "hf" / "model.safetensors",
                        "--config", tmp_path / "hf" / "config.json", "--image-size", 64, "--output", out)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.id2label == {0: "cat", 1: "dog", 2: "owl"} and model.config.hidden_act == "gelu"
    image = Image.fromarray(skdata.astronaut())
    pixels = AutoImageProcessor.from_pretrained(out, backend="pil")(image, return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(pixels).logits
        torch.testing.assert_close(model(pixels).logits, expected, atol=1e-5, rtol=0)
    predictions = pipeline("image-classification", model=str(out), top_k=3)(image)
    scores = expected.softmax(-1)[0]
    for p in predictions:
        assert p["score"] == pytest.approx(scores[model.config.label2id[p["label"]]].item(), abs=1e-5)
    backbone = hf_vision_zoo.load_backbone(str(out), out_features=["stage2"]).eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone(pixels).feature_maps[0], reference.cvt(pixels).last_hidden_state,
                                   atol=1e-5, rtol=0)


def test_benchmark_entry_point_converts_in_memory_transformers_weights():
    """What the speed board calls: convert_to_model("cvt", state_dict, config, "transformers")."""
    reference = _transformers_model()
    model = convert_to_model("cvt", reference.state_dict(), config_from_transformers(reference.config.to_dict()),
                             "transformers")
    pixels = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, reference(pixels).logits, atol=1e-5, rtol=0)
    bare = {k[len("cvt."):]: v for k, v in reference.state_dict().items() if k.startswith("cvt.")}
    backbone = convert_to_model("cvt", bare, config_from_transformers(reference.config.to_dict(),
                                                                      out_features=["stage2"]),
                                "transformers", task="backbone")
    with torch.no_grad():
        torch.testing.assert_close(backbone(pixels).feature_maps[0], reference.cvt(pixels).last_hidden_state,
                                   atol=1e-5, rtol=0)


def _assert_failed_cleanly(result, out, *phrases):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "a temporary folder was left behind"


def test_bad_checkpoints_fail_clearly(tmp_path):
    swin = hf_vision_zoo.create_model("swin", image_size=32, patch_size=2, embed_dim=16, depths=[2], num_heads=[2],
                                      window_size=4)
    other = tmp_path / "swin.pth"
    torch.save(swin.state_dict(), other)
    _assert_failed_cleanly(run_main("--source", "official", "--checkpoint", other, "--output", tmp_path / "a"),
                           tmp_path / "a", "does not look like a CvT checkpoint")
    _, state, _ = _official()
    official = tmp_path / "official.pth"
    torch.save(state, official)
    _assert_failed_cleanly(run_main("--source", "transformers", "--checkpoint", official, "--output",
                                      tmp_path / "b"), tmp_path / "b", "not source='transformers'")
    _assert_failed_cleanly(run_main("--source", "official", "--checkpoint", official, "--variant",
                                      "cvt_13_224.in1k", "--output", tmp_path / "c"), tmp_path / "c",
                           "does not fit the model config")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(official.read_bytes()[:1000])
    _assert_failed_cleanly(run_main("--source", "official", "--checkpoint", truncated, "--output", tmp_path / "d"),
                           tmp_path / "d", "Could not read checkpoint")
    with pytest.raises(ConversionError, match="Unknown source"):
        convert_state_dict(state, None, "timm")
    with pytest.raises(ConversionError, match="not a CvT one"):
        config_from_transformers({"model_type": "swin"})
