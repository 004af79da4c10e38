"""`--resume`: a run stopped (or SIGKILLed) mid-epoch and resumed ends exactly where an uninterrupted run ends, and
unusable checkpoints (missing, incomplete, corrupt, from another run) are clear errors."""

import json
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import REPO, TINY_SWIN, kill_then_resume, tiny_args

from hf_vision_zoo.training import TrainingError, train
from hf_vision_zoo.training.loop import checkpoint_dirs

# 256 images, batch 32, 2 micro-batches per step: 4 optimizer steps per epoch, 8 in all; mixup/cutmix and drop-path
# on, so every source of randomness has to be restored for the runs to agree.
RESUME = dict(gradient_accumulation_steps=2, mixup=0.4, cutmix=1.0, checkpoint_every=3, keep_checkpoints=0)


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _assert_same_run(a, b):
    wa, wb = _weights(a.output_dir), _weights(b.output_dir)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)
    assert a.global_step == b.global_step
    for ha, hb in zip(a.history, b.history, strict=True):
        for key in ("train_loss", "eval_loss", "top1_accuracy", "top5_accuracy"):
            assert ha[key] == pytest.approx(hb[key], abs=1e-6), key


@pytest.fixture
def reference(tmp_path):
    return train(tiny_args(tmp_path / "ref", **RESUME))


@pytest.mark.slow
def test_stopped_mid_epoch_then_resumed_matches_an_uninterrupted_run(tmp_path, reference):
    assert reference.global_step == 8
    stopped = train(tiny_args(tmp_path / "b", stop_after_steps=7, **RESUME))
    assert stopped.stopped and stopped.output_dir is None and not (tmp_path / "b" / "model").exists()
    run_dir = tmp_path / "b" / "model-run"
    assert [p.name for p in checkpoint_dirs(run_dir)] == ["step_00000003", "step_00000004", "step_00000006"]
    state = json.loads((run_dir / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert (state["epoch"], state["batches_in_epoch"]) == (1, 4)  # mid-epoch

    resumed = train(tiny_args(tmp_path / "b", resume="latest", **RESUME))
    _assert_same_run(reference, resumed)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # no duplicated epoch lines

    # from the first epoch's mid-point (epoch 0, 6 of 8 batches done) into a new output folder
    early = train(tiny_args(tmp_path / "c", resume=str(run_dir / "checkpoints" / "step_00000003"), **RESUME))
    _assert_same_run(reference, early)


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path, reference):
    """SIGKILL the example script after its second checkpoint, resume it with `--resume latest`."""
    out = tmp_path / "k" / "model"
    cmd = [sys.executable, str(REPO / "examples" / "train_image_classification.py"), "--model", "swin",
           "--model-overrides", *TINY_SWIN, "--max-train-samples", "256", "--max-eval-samples", "128",
           "--epochs", "2", "--batch-size", "32", "--eval-batch-size", "64", "--learning-rate", "3e-3",
           "--warmup-steps", "2", "--rrc-scale", "0.6", "1.0", "--num-threads", "1", "--seed", "7",
           "--gradient-accumulation-steps", "2", "--mixup", "0.4", "--cutmix", "1.0", "--checkpoint-every", "1",
           "--keep-checkpoints", "2", "--no-progress", "--report-to", "none", "--output-dir", str(out)]
    resumed = kill_then_resume(cmd, out, total_steps=8)
    for key, value in _weights(reference.output_dir).items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6)
    final = json.loads((out / "all_results.json").read_text())
    assert final["top1_accuracy"] == pytest.approx(reference.metrics["top1_accuracy"], abs=1e-6)


# ------------------------------------------------------------------------------------------------ bad checkpoints
@pytest.fixture
def stopped_run(tmp_path):
    train(tiny_args(tmp_path, stop_after_steps=3, checkpoint_every=2, max_train_samples=128, max_eval_samples=32))
    return tmp_path / "model-run" / "checkpoints" / "step_00000002"


def test_resume_from_a_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        train(tiny_args(tmp_path, resume=str(tmp_path / "nope" / "step_00000005")))
    with pytest.raises(TrainingError, match="no checkpoint in"):
        train(tiny_args(tmp_path, resume="latest"))
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("damage, message", [
    ("truncate_weights", "corrupt"),
    ("garbage_state", "corrupt"),
    ("drop_optimizer", "not a complete checkpoint.*optimizer.bin"),
    ("truncate_optimizer", "corrupt"),
])
def test_resume_from_a_corrupt_checkpoint_is_an_error(tmp_path, stopped_run, damage, message):
    checkpoint = tmp_path / "damaged"
    shutil.copytree(stopped_run, checkpoint)
    if damage == "truncate_weights":
        data = (checkpoint / "model.safetensors").read_bytes()
        (checkpoint / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "garbage_state":
        (checkpoint / "trainer_state.json").write_text("{not json")
    elif damage == "drop_optimizer":
        (checkpoint / "optimizer.bin").unlink()
    else:
        data = (checkpoint / "optimizer.bin").read_bytes()
        (checkpoint / "optimizer.bin").write_bytes(data[:100])
    with pytest.raises(TrainingError, match=message):
        train(tiny_args(tmp_path, resume=str(checkpoint), max_train_samples=128, max_eval_samples=32))
    assert not (tmp_path / "model").exists()


def test_resume_with_other_run_settings_is_an_error(tmp_path, stopped_run):
    with pytest.raises(TrainingError, match="different run.*batch_size"):
        train(tiny_args(tmp_path, resume=str(stopped_run), batch_size=16, max_train_samples=128,
                        max_eval_samples=32))
    with pytest.raises(TrainingError, match="different run.*model_overrides"):
        train(tiny_args(tmp_path, resume=str(stopped_run), max_train_samples=128, max_eval_samples=32,
                        model_overrides=TINY_SWIN + ["embed_dim=32"]))
