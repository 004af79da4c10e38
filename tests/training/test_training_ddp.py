"""The example script under two real CPU processes (DDP over gloo), launched exactly as documented:
`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...` (NOT `--cpu --num_processes 2`, which
silently runs one process). Checks that the data is sharded and that both ranks end with identical weights."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from training_helpers import REPO, TINY_SWIN, subprocess_env

from hf_vision_zoo.training.loop import weights_digest


@pytest.mark.slow
def test_example_on_two_cpu_processes(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "ddp-model"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           str(REPO / "examples" / "train_image_classification.py"),
           "--model", "swin", "--model-overrides", *TINY_SWIN, "--max-train-samples", "256",
           "--max-eval-samples", "100", "--epochs", "2", "--batch-size", "16", "--eval-batch-size", "32",
           "--num-threads", "1", "--seed", "3", "--checkpoint-every", "5", "--no-progress", "--report-to", "none",
           "--rank-report", "--output-dir", str(out)]
    env = subprocess_env()
    env["ACCELERATE_USE_CPU"] = "1"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])

    run_dir = out.with_name("ddp-model-run")
    reports = [json.loads((run_dir / f"rank_{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["num_processes"] for r in reports] == [2, 2]  # really two processes, not one
    for epoch in ("0", "1"):
        rows = [set(r["rows_per_epoch"][epoch]) for r in reports]
        assert len(rows[0]) == len(rows[1]) == 128  # each rank sees half of the 256 images ...
        assert not rows[0] & rows[1]  # ... a different half ...
        assert rows[0] | rows[1] == set(range(256))  # ... and together all of them
    assert reports[0]["rows_per_epoch"]["0"] != reports[0]["rows_per_epoch"]["1"]  # reshuffled each epoch
    assert reports[0]["global_step"] == reports[1]["global_step"] == 2 * 8  # 128 images / 16 per step per rank
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]  # DDP kept the ranks identical

    results = json.loads((out / "all_results.json").read_text())
    assert results["num_processes"] == 2 and results["eval_samples"] == 100
    from transformers import AutoModelForImageClassification

    saved = AutoModelForImageClassification.from_pretrained(out)
    assert weights_digest(saved) == reports[0]["weights_sha256"]  # the saved model is what the ranks trained
    assert set(load_file(str(out / "model.safetensors"))) == set(saved.state_dict())
    assert len(list((run_dir / "checkpoints").iterdir())) >= 1
    assert done.stdout.count("Saved the model to") == 1  # only the main process writes the final folder
