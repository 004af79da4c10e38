"""conversion/convert_vit.py end to end: timm, official (MAE, `{'model': ...}`) and transformers checkpoints become
zoo folders that load through the Auto classes with the original's outputs; bad checkpoints fail clearly and leave
nothing behind."""

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer
from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining, ViTConfig, ViTModel

import hf_vision_zoo  # noqa: F401  (registers zoo_vit / zoo_mae with the Auto classes)
from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion import vit as vit_conversion

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "conversion" / "convert_vit.py"
MAE_FIXTURE = REPO / "tests" / "fixtures" / "mae_official" / "pretrain.safetensors"


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_vit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args) -> subprocess.CompletedProcess:
    """The script's `main` in this process (a fresh interpreter per call costs ~20 s on the shared machine);
    `test_script_runs_as_a_program` runs it as a real subprocess once."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _load_script().main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


@pytest.mark.slow
def test_script_runs_as_a_program(tmp_path):
    checkpoint = tmp_path / "vit.pth"
    torch.save(timm_model().state_dict(), checkpoint)
    result = subprocess.run([sys.executable, str(SCRIPT), "--source", "timm", "--checkpoint", str(checkpoint),
                             "--num-heads", "3", "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "0 missing / 0 unexpected" in result.stdout, result.stderr


def timm_model() -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5,
                              global_pool="avg")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def test_timm_pth_to_auto_classifier(tmp_path):
    reference = timm_model()
    checkpoint = tmp_path / "vit.pth"
    torch.save({"model": reference.state_dict(), "epoch": 1}, checkpoint)
    out = tmp_path / "converted"
    result = run_script("--source", "timm", "--checkpoint", checkpoint, "--num-heads", 3, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout and "VitForImageClassification" in result.stdout
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.model_type == "zoo_vit" and model.config.pooling == "mean"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, reference(x), atol=1e-5, rtol=0)


def test_transformers_vitmodel_folder_to_automodel(tmp_path):
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                       image_size=32, patch_size=8)
    reference = ViTModel(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    out = tmp_path / "converted"
    result = run_script("--source", "transformers", "--checkpoint", tmp_path / "hf" / "model.safetensors",
                        "--config", tmp_path / "hf" / "config.json", "--output", out)
    assert result.returncode == 0, result.stderr
    model = AutoModel.from_pretrained(out).eval()
    assert type(model).__name__ == "VitModel" and model.config.use_pooler
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)


def test_official_mae_pretraining_checkpoint(tmp_path):
    """The official MAE pre-training model (fixture weights re-wrapped as {'model': ...}) -> MaeForPreTraining, and
    with --arch vit -> its encoder as a VitModel."""
    tensors = load_file(MAE_FIXTURE)
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    checkpoint = tmp_path / "mae.pth"
    torch.save({"model": state}, checkpoint)
    out = tmp_path / "mae"
    result = run_script("--arch", "mae", "--source", "official", "--checkpoint", checkpoint, "--num-heads", 2,
                        "--output", out)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    config["decoder_num_attention_heads"] = 2  # not readable off the weights: set like a user would
    (out / "config.json").write_text(json.dumps(config))
    model = AutoModelForPreTraining.from_pretrained(out).eval()
    assert type(model).__name__ == "MaeForPreTraining"
    with torch.no_grad():
        pred = model(tensors["pixel_values"], noise=tensors["noise"]).logits
    torch.testing.assert_close(pred, tensors["pred"], atol=1e-5, rtol=0)

    encoder_out = tmp_path / "encoder"
    result = run_script("--source", "official", "--checkpoint", checkpoint, "--num-heads", 2, "--output", encoder_out)
    assert result.returncode == 0, result.stderr and "VitModel" in result.stdout
    encoder = AutoModel.from_pretrained(encoder_out).eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(tensors["pixel_values"]).last_hidden_state,
                                   model.vit(tensors["pixel_values"]).last_hidden_state, atol=1e-6, rtol=0)


def test_bad_checkpoints_fail_clearly_and_leave_nothing(tmp_path):
    out = tmp_path / "out"
    swin_like = tmp_path / "swin.safetensors"
    save_file({"layers.0.blocks.0.attn.relative_position_bias_table": torch.zeros(9, 2),
               "patch_embed.proj.weight": torch.zeros(4, 3, 2, 2)}, swin_like)
    result = run_script("--source", "timm", "--checkpoint", swin_like, "--output", out)
    assert result.returncode == 1 and "not a plain ViT" in result.stderr
    reference = timm_model()
    checkpoint = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), checkpoint)
    result = run_script("--source", "transformers", "--checkpoint", checkpoint, "--output", out)
    assert result.returncode == 1 and "source" in result.stderr
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    result = run_script("--source", "timm", "--checkpoint", truncated, "--output", out)
    assert result.returncode == 1 and "truncated" in result.stderr
    assert not out.exists()
    # a head count that does not divide the width is reported, not silently guessed
    with pytest.raises(ConversionError, match="num_attention_heads"):
        vit_conversion.infer_config({k: torch.zeros(1, 1, 40) if k == "cls_token" else v for k, v in
                                     VisionTransformer(img_size=16, patch_size=8, embed_dim=40, depth=1, num_heads=2,
                                                       num_classes=0).state_dict().items()}, "timm")
    # unsupported parts (here: a distillation token) are unexpected keys, never dropped silently
    state = dict(reference.state_dict(), dist_token=torch.zeros(1, 1, 48))
    with pytest.raises(ConversionError, match="dist_token"):
        convert_to_model("vit", state, vit_conversion.infer_config(state, "timm", num_attention_heads=3), "timm")
