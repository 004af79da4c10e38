"""conversion/convert_hyena_nd.py end to end on an official-layout checkpoint (the parity fixture's state dict saved
the way the official `main.py` saves it), and clear failures for checkpoints that do not fit."""

import argparse
import contextlib
import importlib.util
import io
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion.hyena_nd import convert_state_dict, infer_config

REPO = Path(__file__).parents[3]
SCRIPT = REPO / "conversion" / "convert_hyena_nd.py"
FIXTURE = REPO / "tests" / "fixtures" / "hyena_nd_official" / "hybrid_seq.safetensors"


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_hyena_nd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVERT = _load_script()


def run_script(*args) -> subprocess.CompletedProcess:
    """The script's `main` in this process (a subprocess would spend ~15 s importing the stack)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = CONVERT.main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def official():
    tensors = load_file(FIXTURE)
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return state_dict, tensors


def test_official_training_checkpoint_to_auto_and_pipeline(official, tmp_path, photo):
    state_dict, tensors = official
    checkpoint = tmp_path / "checkpoint.pth"
    # what the official main.py writes: the weights plus optimiser state and its argparse Namespace
    torch.save({"model": state_dict, "epoch": 3, "args": argparse.Namespace(method="hyena2dattn", lr=5e-4)},
               checkpoint)
    out = tmp_path / "converted"
    result = run_script("--checkpoint", checkpoint, "--directional-mode", "seq", "--num-heads", 2, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout and "hyena_then_attention" in result.stdout
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert type(model).__name__ == "HyenaNdForImageClassification" and model.config.model_type == "zoo_hyena_nd"
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=1e-5, rtol=0)
    processor = AutoImageProcessor.from_pretrained(out)
    assert processor(photo, return_tensors="pt").pixel_values.shape == (1, 3, 32, 32)
    predictions = pipeline("image-classification", model=str(out), top_k=2)(photo)
    assert len(predictions) == 2
    # a second run does not overwrite without --overwrite
    again = run_script("--checkpoint", checkpoint, "--output", out)
    assert again.returncode == 1 and "exists" in again.stderr


def test_renames_drop_rebuilt_buffers_and_the_repeated_sine(official):
    state_dict, _ = official
    config = infer_config(state_dict, "official", num_attention_heads=2)
    converted = convert_state_dict(state_dict, config, "official")
    assert "hyena_nd.blocks.0.mixer.filter_fn.sin.freq" in converted
    assert "hyena_nd.blocks.3.attn.qkv.weight" in converted  # the attention block keeps timm's names
    assert not any(k.endswith(("pos_emb.t", "deltas")) or "implicit_filter" in k for k in converted)
    assert len(converted) == len(state_dict) - 3 * (1 + 2 + 2)  # per Hyena block: t, X/Ydeltas, freq 3 and 5


def test_checkpoints_that_do_not_fit_fail_clearly(official, tmp_path):
    state_dict, _ = official
    config = infer_config(state_dict, "official", num_attention_heads=2)
    wrong_pattern = infer_config(state_dict, "official", num_attention_heads=2, mixer_pattern="all_hyena")
    with pytest.raises(ConversionError, match="mixer_pattern"):
        convert_state_dict(state_dict, wrong_pattern, "official")
    other_decay = infer_config(state_dict, "official", num_attention_heads=2, decay_target=0.05)
    with pytest.raises(ConversionError, match="deltas"):
        convert_state_dict(state_dict, other_decay, "official")
    broken = dict(state_dict)
    broken["blocks.0.attn.filter_fn.implicit_filter.3.freq"] = broken[
        "blocks.0.attn.filter_fn.implicit_filter.3.freq"] + 1
    with pytest.raises(ConversionError, match="shares one Sin"):
        convert_state_dict(broken, config, "official")
    with pytest.raises(ConversionError, match="Hyena N-D"):
        convert_state_dict({"layers.0.blocks.0.attn.qkv.weight": torch.zeros(3, 1)}, config, "official")
    with pytest.raises(ConversionError, match="source"):
        convert_state_dict(state_dict, config, "timm")
    missing = {k: v for k, v in state_dict.items() if k != "blocks.1.mlp.fc1.bias"}
    with pytest.raises(ConversionError, match="1 missing"):
        convert_to_model("hyena_nd", missing, config, "official")
    with pytest.raises(ConversionError, match="transformers"):
        from hf_vision_zoo.conversion.hyena_nd import config_from_transformers
        config_from_transformers({})
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    out = tmp_path / "never"
    result = run_script("--checkpoint", corrupt, "--output", out)
    assert result.returncode == 1 and "Could not read" in result.stderr and not out.exists()
