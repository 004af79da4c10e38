"""Helpers of the training tests: tiny Swin settings, image folders of real Fashion-MNIST images, run settings."""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hf_vision_zoo.training.arguments import TrainingArguments
from hf_vision_zoo.training.data import FASHION_MNIST_CLASSES

REPO = Path(__file__).resolve().parents[2]

# A ~20k-parameter Swin that still has two stages, patch merging and windowed attention (7x7 patch grid at 28 px).
TINY_SWIN = ["image_size=28", "patch_size=4", "embed_dim=16", "depths=[1,1]", "num_heads=[2,4]", "window_size=7",
             "drop_path_rate=0.1"]


def write_image_folder(root: Path, arrays, labels, split: str | None = None, classes=(0, 1, 7), per_class=6,
                       suffix=".png") -> list[Path]:
    """Save real Fashion-MNIST images as `root/[split/]<class name>/<i>.png`; returns the files written."""
    written = []
    for cls in classes:
        name = FASHION_MNIST_CLASSES[cls].replace("/", "-")
        folder = root / split / name if split else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == cls)[:per_class]:
            path = folder / f"{i}{suffix}"
            Image.fromarray(arrays[i]).save(path)
            written.append(path)
    return written


def tiny_args(tmp_path: Path, **changes) -> TrainingArguments:
    """Settings of a few-second run: tiny Swin, 256 Fashion-MNIST images, 2 epochs of 8 batches, 1 thread."""
    base = dict(
        output_dir=str(tmp_path / "model"), model="swin", model_overrides=list(TINY_SWIN), dataset="fashion_mnist",
        max_train_samples=256, max_eval_samples=128, epochs=2, batch_size=32, eval_batch_size=64,
        learning_rate=3e-3, warmup_steps=2, rrc_scale=[0.6, 1.0], num_threads=1, progress=False, report_to="none",
        seed=7,
    )
    base.update(changes)
    return TrainingArguments(**base)


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return env


def kill_then_resume(cmd: list[str], output_dir: Path, total_steps: int, checkpoint: str = "step_00000002",
                     timeout: float = 120) -> dict:
    """Start the training script `cmd`, SIGKILL it as soon as its second checkpoint exists, check that it died by
    the signal mid-run and left no final folder, then rerun it with `--resume latest`; returns the resumed run's
    final weights."""
    from safetensors.torch import load_file

    from hf_vision_zoo.training.loop import checkpoint_dirs

    run_dir = output_dir.parent / f"{output_dir.name}-run"
    process = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "checkpoints" / checkpoint).is_dir():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()[-2000:]
    assert not output_dir.exists()
    done = [int(p.name[5:]) for p in checkpoint_dirs(run_dir)]
    assert done and max(done) < total_steps

    resumed = subprocess.run(cmd + ["--resume", "latest"], env=subprocess_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from {run_dir / 'checkpoints'}" in resumed.stdout
    return load_file(str(output_dir / "model.safetensors"))
