"""The accelerate training loop for every registered image-classification model, and evaluation of saved models.

`train(TrainingArguments)` builds the model (`create_model(name, task="image-classification", num_labels=...,
id2label=..., **overrides)` or `from_pretrained(folder)`), the data (`data.py`), AdamW with optional layer-wise LR
decay and a warm-up + cosine schedule (`optim.py`), and runs it under `accelerate` on one or several processes (CPU
DDP: `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ...`). Metrics are our own
`evaluate.Metric`s (`metrics.py`).

Files. The final model goes to `output_dir` (config.json, model.safetensors, preprocessor_config.json, README.md model
card, all_results.json, training_args.json, log.jsonl, metrics.csv), written into a temporary sibling and renamed only
when complete: a failed run leaves no `output_dir`. While training, `run_dir` (default `<output_dir>-run`) holds
`checkpoints/step_<N>/` (each written to a temporary name and renamed when complete), `log.jsonl` and `metrics.csv`
(one row per epoch), and TensorBoard events when TensorBoard is installed.

Exact resume. A checkpoint is `accelerator.save_state` (model, optimizer, the LR scheduler, RNG states) plus
`trainer_state.json` (epoch, optimizer step, batches done in the epoch, metric history). The rest is made a pure
function of the seed, so nothing else needs saving: the data order of epoch e is a permutation seeded by (seed, e)
(`EpochShuffleSampler`, sharded across processes by accelerate); the augmentation of sample i in epoch e is seeded
by (seed, e, i) (`TrainTransform`); the global torch RNG (dropout, drop-path) and mixup/cutmix are reseeded before
every micro-batch from (seed, micro-batch number, process index). Resuming skips the batches already done with
`accelerator.skip_first_batches`, so an interrupted then resumed run ends with the same weights as an uninterrupted
one (tested). Resuming checks that the run-defining settings (model, data, batch sizes, processes, seed) match.

Shared machinery. `OptimizationLoop` (epochs, seeding, accumulation, clipping, schedule, checkpoints, resume, logs)
runs a task's `step_fn(batch, generator) -> StepOutput`; `train` (classification) and `pretrain.pretrain`
(self-supervised `XForPreTraining` models) both use it, with `make_accelerator`, `make_optimizer`, `make_schedule`
and `save_final_model`.

Linear probing (`--linear-probe`, e.g. with `--pretrained PRETRAIN_DIR`): every parameter but the classifier is
frozen and the encoder stays in eval mode; the classifier is MAE's probe head (BatchNorm without affine parameters,
then the linear layer), folded into a plain linear layer when saved, so the probe reloads as an ordinary classifier.

Robust training (the Brain-Score CrossViT recipe, `--recipe brainscore_crossvit18`, paper: Berrios & Deza 2022).
`--adversarial fgsm` replaces every micro-batch by its fast FGSM-with-random-start example (`adversarial.py`; eps and
step in pixel units, the processor's normalisation undone and redone around the attack) before the forward/backward
that updates the model; the random start is drawn from the micro-batch's seeded generator, so resume stays exact.
`--rotation-invariance` adds the recipe's 90/180-degree rotations to the training transform, `--optimizer adam
--lr-schedule halving` give its optimiser and schedule. `evaluate_model(..., pgd_steps=10)` reports robust top-1.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .adversarial import AttackError, check_attack_settings, fgsm_random_start, pgd
from .arguments import RECIPES, EvaluationArguments, TrainingArguments, parse_into
from .data import (
    ClassificationData,
    DataError,
    EpochShuffleSampler,
    EvalTransform,
    Preprocessing,
    TrainTransform,
    TransformedDataset,
    collate,
    fit_image_processor,
    load_classification_dataset,
    mix_batch,
    sample_seed,
)
from .metrics import classification_metrics
from .optim import cosine_schedule, param_groups

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
CHECKPOINTS = "checkpoints"
# Settings a checkpoint must agree on to be resumed (anything else may change, with a warning).
RUN_DEFINING = ("model", "pretrained", "model_overrides", "dataset", "dataset_config", "max_train_samples",
                "batch_size", "gradient_accumulation_steps", "seed", "num_processes", "num_labels")
CSV_FIELDS = ("epoch", "step", "lr", "train_loss", "eval_loss", "top1_accuracy", "top5_accuracy",
              "mean_per_class_accuracy", "epoch_seconds", "train_seconds")


class TrainingError(RuntimeError):
    """A run that cannot start or continue: bad settings, unusable checkpoint, labels that don't fit the model."""


@dataclass
class TrainResult:
    output_dir: Path | None  # None when the run was stopped early (--stop-after-steps)
    run_dir: Path
    metrics: dict[str, Any]
    global_step: int
    epochs_completed: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    stopped: bool = False


# ------------------------------------------------------------------------------------------------- model set-up
def build_model_and_processor(args: TrainingArguments, data: ClassificationData):
    """The model to train (new from the registry, or a saved folder) and its image processor fitted to its input
    size. Labels that don't fit a pretrained checkpoint are an error unless `ignore_mismatched_sizes`."""
    import hf_vision_zoo
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    overrides = args.overrides()
    labels = {"num_labels": data.num_labels, "id2label": data.id2label, "label2id": data.label2id}
    if (args.model is None) == (args.pretrained is None):
        raise TrainingError("give exactly one of --model (a registry name) or --pretrained (a saved model folder)")
    if args.model is not None:
        for key in labels:
            if key in overrides:
                raise TrainingError(f"--model-overrides must not set {key}; it comes from the dataset's classes")
        try:
            model = hf_vision_zoo.create_model(args.model, task="image-classification", **labels, **overrides)
        except (KeyError, TypeError, ValueError, StrictDataclassError) as err:
            raise TrainingError(f"cannot build model {args.model!r} with overrides {overrides}: {err}") from err
        processor = hf_vision_zoo.create_image_processor(args.model)
    else:
        folder = Path(args.pretrained)
        if not (folder / "config.json").is_file():
            raise TrainingError(f"--pretrained {folder} is not a saved model folder (no config.json)")
        config = AutoConfig.from_pretrained(str(folder))
        if is_pretraining_checkpoint(config):
            pass  # a self-supervised checkpoint (examples/pretrain.py) has no classifier: a new one is made
        elif config.num_labels != data.num_labels and not args.ignore_mismatched_sizes:
            raise TrainingError(
                f"The checkpoint {folder} has num_labels={config.num_labels} "
                f"({_label_preview(config.id2label)}) but the dataset {data.name} has {data.num_labels} classes "
                f"({_label_preview(data.id2label)}). Pass --ignore-mismatched-sizes to re-initialise the classifier "
                f"for the dataset's classes."
            )
        elif config.num_labels == data.num_labels and _names(config.id2label) != data.class_names:
            if not _default_names(config.id2label):
                warnings.warn(f"The checkpoint's class names {_label_preview(config.id2label)} differ from the "
                              f"dataset's {_label_preview(data.id2label)}; training with the dataset's names",
                              stacklevel=2)
        try:
            model = AutoModelForImageClassification.from_pretrained(
                str(folder), ignore_mismatched_sizes=args.ignore_mismatched_sizes, **labels, **overrides)
        except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as err:
            raise TrainingError(f"could not load the model in {folder}: {err}") from err
        try:
            processor = AutoImageProcessor.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise TrainingError(f"could not load the image processor of {folder} "
                                f"(preprocessor_config.json): {err}") from err
    return model, fit_processor_to_model(processor, model.config, args.input_size, args.crop_pct)


def fit_processor_to_model(processor, config, input_size: int | None = None, crop_pct: float | None = None):
    """The image processor resized to the model's input (or `input_size`), single-channel for 1-channel models."""
    image_size = input_size or model_input_size(config)
    if image_size is not None:
        processor = fit_image_processor(processor, image_size, crop_pct)
    if getattr(config, "num_channels", 3) == 1:  # the saved processor must produce single-channel input
        prep = Preprocessing.from_image_processor(processor, 1)
        processor.image_mean, processor.image_std, processor.do_convert_rgb = prep.mean, prep.std, False
    return processor


def is_pretraining_checkpoint(config) -> bool:
    """Whether a saved config comes from a self-supervised `XForPreTraining` model (no classifier head)."""
    return any(str(name).endswith("ForPreTraining") for name in (getattr(config, "architectures", None) or []))


def model_input_size(config):
    """The image size the processor should make for a model: its `image_size`, except for multi-branch models
    (CrossViT: one square size per branch, each branch resizing the input itself), which get the largest one."""
    image_size = getattr(config, "image_size", None)
    branches = getattr(config, "num_branches", 0)
    if isinstance(image_size, (list, tuple)) and branches and len(image_size) == branches:
        return int(max(image_size))
    return image_size


def _names(id2label) -> list[str]:
    return [id2label[k] for k in sorted(id2label, key=int)] if id2label else []


def _default_names(id2label) -> bool:
    return all(str(v) == f"LABEL_{k}" for k, v in (id2label or {}).items())


def _label_preview(id2label) -> str:
    names = _names(id2label)
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


# ------------------------------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def resolve_checkpoint(resume: str, run_dir: Path) -> Path:
    """The checkpoint folder `--resume` names ('latest' = newest in RUN_DIR/checkpoints), checked for completeness."""
    if resume == "latest":
        found = checkpoint_dirs(run_dir)
        if not found:
            raise TrainingError(f"--resume latest: no checkpoint in {Path(run_dir) / CHECKPOINTS}")
        path = found[-1]
    else:
        path = Path(resume)
    if not path.exists():
        raise TrainingError(f"--resume {resume}: checkpoint {path} does not exist")
    if not path.is_dir():
        raise TrainingError(f"--resume {resume}: {path} is not a checkpoint folder")
    missing = [name for name in (TRAINER_STATE, "optimizer.bin") if not (path / name).is_file()]
    if not any((path / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
        missing.append("model.safetensors")
    if missing:
        raise TrainingError(f"--resume {resume}: {path} is not a complete checkpoint (missing {', '.join(missing)})")
    return path


def read_trainer_state(path: Path) -> dict:
    try:
        state = json.loads((path / TRAINER_STATE).read_text())
    except (OSError, ValueError) as err:
        raise TrainingError(f"checkpoint {path} is corrupt: cannot read {TRAINER_STATE}: {err}") from err
    needed = ("epoch", "global_step", "batches_in_epoch", "run", "history")
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise TrainingError(f"checkpoint {path} is corrupt: {TRAINER_STATE} lacks {needed}")
    return state


def save_checkpoint(accelerator, run_dir: Path, state: dict, keep: int) -> Path:
    """`accelerator.save_state` into a temporary folder, add trainer_state.json, rename (all processes call it)."""
    root = Path(run_dir) / CHECKPOINTS
    final = root / f"step_{state['global_step']:08d}"
    tmp = root / f".tmp-step_{state['global_step']:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep > 0:
            for old in checkpoint_dirs(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model, dataloader, accelerator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a dataloader (gathered over processes, duplicates from even batching removed).

    Always in fp32, also in a bf16 run (accelerate's autocast wrapper is bypassed), so the metrics a run reports
    are those of the saved model as `from_pretrained` + `pipeline` use it."""
    model.eval()
    forward = model
    if accelerator is not None:
        module = accelerator.unwrap_model(model)
        forward = getattr(module, "_original_forward", None) or module
    all_logits, all_labels = [], []
    for batch in dataloader:
        logits = forward(pixel_values=batch["pixel_values"]).logits.float()
        labels = batch["labels"]
        if accelerator is not None:
            logits, labels = accelerator.gather_for_metrics((logits.contiguous(), labels))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    if not all_logits:
        raise DataError("the evaluation split is empty")
    return torch.cat(all_logits), torch.cat(all_labels)


def predict_robust(model, dataloader, *, epsilon: float, steps: int, alpha: float | None = None, restarts: int = 1,
                   mean, std, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean logits, logits under an L-inf PGD attack (`adversarial.pgd`, pixel-space epsilon, random start drawn
    from a generator seeded with `seed`) and labels, over a dataloader, in eval mode and fp32."""
    model.eval()
    generator = torch.Generator().manual_seed(int(seed))
    clean, robust, all_labels = [], [], []
    for batch in dataloader:
        pixels, labels = batch["pixel_values"], batch["labels"]
        with torch.no_grad():
            clean.append(model(pixel_values=pixels).logits.float().cpu())
        adversarial = pgd(model, pixels, labels, epsilon=epsilon, steps=steps, alpha=alpha, restarts=restarts,
                          mean=mean, std=std, generator=generator)
        with torch.no_grad():
            robust.append(model(pixel_values=adversarial).logits.float().cpu())
        all_labels.append(labels.cpu())
    if not clean:
        raise DataError("the evaluation split is empty")
    return torch.cat(clean), torch.cat(robust), torch.cat(all_labels)


def score(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """top-1 / top-5 / per-class accuracy (our evaluate.Metric classes) plus the mean cross-entropy."""
    result = classification_metrics(logits.numpy(), labels.numpy(), class_names=class_names)
    result["eval_loss"] = float(F.cross_entropy(logits, labels).item())
    result["num_samples"] = int(labels.numel())
    return result


# ------------------------------------------------------------------------------------------------- the loop
def prepare_run_dirs(args) -> tuple[Path, Path]:
    """(output_dir, run_dir) of a run; an existing non-empty output_dir is an error unless overwrite_output_dir."""
    output_dir = Path(args.output_dir)
    run_dir = Path(args.run_dir) if args.run_dir else output_dir.with_name(output_dir.name + "-run")
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite_output_dir:
        raise TrainingError(f"{output_dir} already holds a model; pass --overwrite-output-dir to replace it, or "
                            f"choose another --output-dir")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    return output_dir, run_dir


def make_accelerator(args, run_dir: Path):
    """The Accelerator of a run (gradient accumulation, mixed precision, trackers) and the tracker name (or None)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    log_with = _tracker(args.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")),
        dataloader_config=DataLoaderConfiguration(even_batches=True),
    )
    return accelerator, log_with


def make_optimizer(args, model) -> torch.optim.Optimizer:
    """Adam(W) over `param_groups` (weight-decay exclusions, optional layer decay, the model's optim hints)."""
    groups = param_groups(model, args.learning_rate, args.weight_decay, args.layer_decay)
    optimizer_class = torch.optim.Adam if getattr(args, "optimizer", "adamw") == "adam" else torch.optim.AdamW
    return optimizer_class(groups, lr=args.learning_rate, betas=tuple(args.adam_betas))


def make_schedule(args, optimizer, batches_per_epoch: int) -> tuple[Any, int, int]:
    """(scheduler, total optimizer steps, number of epochs) for `batches_per_epoch` micro-batches per epoch."""
    if batches_per_epoch == 0:
        raise TrainingError("the training split gives no batches")
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    total_steps = args.max_steps or args.epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    warmup = args.warmup_steps if args.warmup_steps is not None else round(args.warmup_ratio * total_steps)
    if getattr(args, "lr_schedule", "cosine") == "halving":
        scheduler = halving_schedule(optimizer, steps_per_epoch, args.lr_start_factor)
    else:
        scheduler = cosine_schedule(optimizer, total_steps, warmup, min_lr_ratio=args.min_lr / args.learning_rate)
    return scheduler, total_steps, num_epochs


@dataclass
class StepOutput:
    """What a training step function returns for one micro-batch: the loss to back-propagate, the number of
    samples it averages over, and optional named loss terms (scalars, logged as `train_<name>`)."""

    loss: torch.Tensor
    count: int
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class OptimizationLoop:
    """The epoch / micro-batch / optimizer-step machinery shared by `train` (classification) and
    `pretrain.pretrain` (self-supervised): exact resume, seeding, gradient accumulation and clipping, LR schedule,
    checkpoints, progress bar, per-epoch logs. The task supplies `step_fn(batch, generator) -> StepOutput` and
    optionally `evaluate(record)` (adds eval metrics to an epoch's record), `before_step(global_step)` (called
    before the first micro-batch of every optimizer step) and `train_mode(model)` (after `model.train()`)."""

    def __init__(self, args, accelerator, model, optimizer, scheduler, train_loader, sampler, train_set, *,
                 run_dir: Path, run_info: dict, total_steps: int, num_epochs: int, log_with,
                 csv_fields=CSV_FIELDS, format_record=None):
        self.args, self.accelerator, self.model, self.optimizer = args, accelerator, model, optimizer
        self.scheduler, self.train_loader, self.sampler, self.train_set = scheduler, train_loader, sampler, train_set
        self.run_dir, self.run_info, self.log_with = Path(run_dir), run_info, log_with
        self.total_steps, self.num_epochs = total_steps, num_epochs
        self.batches_per_epoch = len(train_loader)
        self.csv_fields, self.format_record = csv_fields, format_record or _format_record
        self.is_main = accelerator.is_main_process
        self.epoch, self.global_step, self.batches_done, self.history, self.train_seconds = 0, 0, 0, [], 0.0
        self.resumed_totals: dict[str, float] = {}
        self.seen_rows: dict[int, list[int]] = {}
        self.stopped = False

    def restore(self, resume_path: Path | None, resume_state: dict | None) -> None:
        """Load a checkpoint (model, optimizer, scheduler, RNG) and its trainer state; checks it fits the run."""
        if resume_state is None:
            return
        _check_resumable(resume_state["run"], self.run_info, resume_path)
        try:
            self.accelerator.load_state(str(resume_path))
        except Exception as err:  # noqa: BLE001  (safetensors, pickle, shape errors ...)
            raise TrainingError(f"checkpoint {resume_path} is corrupt or does not fit this model: "
                                f"{type(err).__name__}: {err}") from err
        self.epoch, self.global_step = int(resume_state["epoch"]), int(resume_state["global_step"])
        self.batches_done, self.history = int(resume_state["batches_in_epoch"]), list(resume_state["history"])
        self.train_seconds = float(resume_state.get("train_seconds", 0.0))
        if self.batches_done and self.is_main:  # the epoch's loss so far, summed over processes
            totals = resume_state.get("epoch_loss_totals", [0.0, 0.0])
            self.resumed_totals = {"loss": float(totals[0]), "count": float(totals[1]),
                                   **{k: float(v) for k, v in resume_state.get("epoch_term_totals", {}).items()}}
        if self.is_main:
            print(f"Resumed from {resume_path}: epoch {self.epoch}, step {self.global_step}/{self.total_steps}, "
                  f"{self.batches_done} batches into the epoch", flush=True)

    def start_logs(self, tracker_name: str = "train") -> None:
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _rewrite_logs(self.run_dir, self.history, self.csv_fields)
            (self.run_dir / "training_args.json").write_text(json.dumps(dataclasses.asdict(self.args), indent=1))
        if self.log_with:
            self.accelerator.init_trackers(tracker_name, config=_flat_config(self.args))

    def _state(self, batches: int, totals: dict[str, float]) -> dict:
        return {"epoch": self.epoch, "global_step": self.global_step, "batches_in_epoch": batches,
                "run": self.run_info, "history": self.history, "train_seconds": self.train_seconds,
                "total_steps": self.total_steps,
                "epoch_loss_totals": [totals.get("loss", 0.0), totals.get("count", 0.0)],
                "epoch_term_totals": {k: v for k, v in totals.items() if k not in ("loss", "count")}}

    def _reduced(self, sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        names = sorted(sums)
        values = torch.tensor([float(sums[k]) for k in names], dtype=torch.float64)
        return dict(zip(names, self.accelerator.reduce(values, reduction="sum").tolist()))

    def run(self, step_fn, *, evaluate=None, before_step=None, train_mode=None) -> None:
        args, accelerator, model, optimizer = self.args, self.accelerator, self.model, self.optimizer
        rank = accelerator.process_index
        progress = _progress_bar(args, self.is_main, self.total_steps, self.global_step)
        running: dict[str, float] = {}
        running_count = 0
        while self.epoch < self.num_epochs and self.global_step < self.total_steps and not self.stopped:
            epoch = self.epoch
            self.sampler.set_epoch(epoch)
            self.train_set.set_epoch(epoch)
            loader = (accelerator.skip_first_batches(self.train_loader, self.batches_done) if self.batches_done
                      else self.train_loader)
            loader.set_epoch(epoch)
            model.train()
            if train_mode is not None:
                train_mode(model)
            epoch_start = segment_start = time.time()
            sums: dict[str, Any] = {"loss": torch.tensor(0.0, dtype=torch.float64), "count": 0.0}
            for key, value in self.resumed_totals.items():
                sums[key] = sums.get(key, 0.0) + value
            self.resumed_totals = {}
            for batch in loader:
                micro = epoch * self.batches_per_epoch + self.batches_done
                step_seed = sample_seed(args.seed, micro, 1_000_003 + rank)
                torch.manual_seed(step_seed)
                generator = torch.Generator().manual_seed(step_seed)
                if args.rank_report:
                    self.seen_rows.setdefault(epoch, []).extend(batch["index"].tolist())
                if before_step is not None and self.batches_done % args.gradient_accumulation_steps == 0:
                    before_step(self.global_step)
                with accelerator.accumulate(model):
                    out = step_fn(batch, generator)
                    loss = out.loss
                    if not torch.isfinite(loss):
                        raise TrainingError(f"the loss became {loss.item()} at step {self.global_step} (epoch "
                                            f"{epoch}); lower --learning-rate or use --max-grad-norm")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                self.batches_done += 1
                sums["loss"] += loss.detach().double() * out.count
                sums["count"] += out.count
                running["loss"] = running.get("loss", 0.0) + loss.item()
                for name, value in out.terms.items():
                    value = float(value.detach()) if torch.is_tensor(value) else float(value)
                    sums[name] = sums.get(name, 0.0) + value * out.count
                    running[name] = running.get(name, 0.0) + value
                running_count += 1
                if not accelerator.sync_gradients:
                    continue
                self.scheduler.step()
                self.global_step += 1
                if self.global_step % max(1, args.log_every) == 0:
                    means = {k: v / max(1, running_count) for k, v in running.items()}
                    lr = self.scheduler.get_last_lr()[0]
                    if progress is not None:
                        progress.set_postfix(**{k: f"{v:.4f}" for k, v in means.items()}, lr=f"{lr:.2e}",
                                             epoch=epoch, refresh=False)
                    if self.log_with:
                        accelerator.log({**{f"train/{k}": v for k, v in means.items()}, "train/lr": lr},
                                        step=self.global_step)
                    running, running_count = {}, 0
                if progress is not None:
                    progress.update(1)
                if (args.checkpoint_every and self.global_step % args.checkpoint_every == 0
                        and self.global_step < self.total_steps):
                    self.train_seconds += time.time() - segment_start
                    save_checkpoint(accelerator, self.run_dir, self._state(self.batches_done, self._reduced(sums)),
                                    args.keep_checkpoints)
                    segment_start = time.time()
                if args.stop_after_steps is not None and self.global_step >= args.stop_after_steps:
                    self.stopped = True
                    break
                if self.global_step >= self.total_steps:
                    break
            if self.stopped:
                break
            self.train_seconds += time.time() - segment_start
            totals = self._reduced(sums)  # epoch end: train losses over all processes, evaluation, logs
            count = max(1.0, totals.pop("count"))
            record = {"epoch": epoch + 1, "step": self.global_step, "lr": self.scheduler.get_last_lr()[0],
                      "train_loss": totals.pop("loss") / count}
            record.update({f"train_{name}": value / count for name, value in totals.items()})
            record.update({"epoch_seconds": time.time() - epoch_start, "train_seconds": self.train_seconds})
            last_epoch = epoch + 1 >= self.num_epochs or self.global_step >= self.total_steps
            if evaluate is not None and (last_epoch or (args.eval_every > 0 and (epoch + 1) % args.eval_every == 0)):
                evaluate(record)
            self.history.append(record)
            if self.is_main:
                _append_logs(self.run_dir, record, self.csv_fields)
                if progress is not None:
                    progress.write(self.format_record(record))
                else:
                    print(self.format_record(record), flush=True)
            if self.log_with:
                accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))},
                                step=self.global_step)
            self.epoch, self.batches_done = epoch + 1, 0
            if args.checkpoint_each_epoch and self.global_step < self.total_steps:
                save_checkpoint(accelerator, self.run_dir, self._state(0, {}), args.keep_checkpoints)
        if progress is not None:
            progress.close()

    def finish(self):
        """After `run`: rank report, end the trackers; returns the unwrapped model."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self.args.rank_report:
            _write_rank_report(self.run_dir, self.accelerator.process_index, self.accelerator.num_processes,
                               self.seen_rows, unwrapped, self.global_step)
        if self.log_with:
            self.accelerator.end_training()
        return unwrapped


# ------------------------------------------------------------------------------------------------- training
def train(args: TrainingArguments) -> TrainResult:
    """Train an image classifier as described by `args` (see `TrainingArguments` / `--help`)."""
    from accelerate.utils import set_seed

    started = time.time()
    _validate(args)
    output_dir, run_dir = prepare_run_dirs(args)
    accelerator, log_with = make_accelerator(args, run_dir)
    is_main = accelerator.is_main_process
    resume_path = resolve_checkpoint(args.resume, run_dir) if args.resume else None
    resume_state = read_trainer_state(resume_path) if resume_path else None

    # data and model (identical on every process: the model is initialised from the same seed)
    with accelerator.main_process_first():
        data = load_classification_dataset(
            args.dataset, config=args.dataset_config, image_column=args.image_column, label_column=args.label_column,
            eval_split=args.eval_split, validation_split=args.validation_split, seed=args.seed,
            max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples,
            verify_images=args.verify_images)
    set_seed(args.seed)
    model, processor = build_model_and_processor(args, data)
    if args.linear_probe:
        freeze_for_linear_probe(model)
    num_channels = getattr(model.config, "num_channels", 3)
    prep = Preprocessing.from_image_processor(processor, num_channels)
    train_set = TransformedDataset(data.train, train_transform(args, prep), data.image_column, data.label_column,
                                   train=True)
    eval_set = TransformedDataset(data.eval, EvalTransform(processor, num_channels), data.image_column,
                                  data.label_column)
    sampler = EpochShuffleSampler(len(train_set), seed=args.seed)
    loader_kwargs = {"collate_fn": collate, "num_workers": args.num_workers}
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, sampler=sampler,
                                               **loader_kwargs)
    eval_loader = torch.utils.data.DataLoader(eval_set, batch_size=args.eval_batch_size, shuffle=False,
                                              **loader_kwargs)

    optimizer = make_optimizer(args, model)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    scheduler, total_steps, num_epochs = make_schedule(args, optimizer, len(train_loader))
    accelerator.register_for_checkpointing(scheduler)

    run_info = {
        "model": args.model, "pretrained": args.pretrained, "model_overrides": args.overrides(),
        "dataset": args.dataset, "dataset_config": args.dataset_config, "max_train_samples": args.max_train_samples,
        "batch_size": args.batch_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "seed": args.seed, "num_processes": accelerator.num_processes, "num_labels": data.num_labels,
        "epochs": args.epochs, "max_steps": args.max_steps, "learning_rate": args.learning_rate,
        "total_steps": total_steps, "adversarial": args.adversarial, "adv_epsilon": args.adv_epsilon,
        "adv_alpha": args.adv_alpha, "rotation_invariance": args.rotation_invariance,
    }
    if args.linear_probe:
        run_info["linear_probe"] = True
    loop = OptimizationLoop(args, accelerator, model, optimizer, scheduler, train_loader, sampler, train_set,
                            run_dir=run_dir, run_info=run_info, total_steps=total_steps, num_epochs=num_epochs,
                            log_with=log_with)
    loop.restore(resume_path, resume_state)
    loop.start_logs("train")

    # the attack runs through the unwrapped module: under DDP no gradient sync is triggered (only the perturbation
    # is differentiated), and accelerate's autocast wrapper (bf16) stays on its forward
    attack_model = accelerator.unwrap_model(model) if args.adversarial != "none" else None
    adv_alpha = args.adv_alpha if args.adv_alpha is not None else 1.25 * args.adv_epsilon

    # a model may add label-free terms to the classification loss: `training_loss_terms(outputs)` returns
    # {name: (value, weight)}; the loop adds weight * value to its own cross-entropy and logs value as train_<name>
    extra_loss_terms = getattr(accelerator.unwrap_model(model), "training_loss_terms", None)

    def step_fn(batch, generator) -> StepOutput:
        pixels, targets = mix_batch(
            batch["pixel_values"], batch["labels"], data.num_labels, mixup_alpha=args.mixup,
            cutmix_alpha=args.cutmix, prob=args.mix_prob, switch_prob=args.mix_switch_prob,
            label_smoothing=args.label_smoothing, generator=generator)
        if attack_model is not None:  # fast adversarial training: train on the FGSM-RS example
            pixels = fgsm_random_start(attack_model, pixels, targets, epsilon=args.adv_epsilon,
                                       alpha=adv_alpha, mean=prep.mean, std=prep.std, generator=generator)
        outputs = model(pixel_values=pixels)
        logits = outputs.logits.float()
        loss = F.cross_entropy(logits, targets.to(logits.device))
        terms = {}
        if extra_loss_terms is not None:  # label-free terms the model adds to its loss (e.g. self-distillation)
            for name, (value, weight) in extra_loss_terms(outputs).items():
                loss = loss + weight * value.float()
                terms[name] = value
        return StepOutput(loss, batch["labels"].shape[0], terms)

    def evaluate(record: dict) -> None:
        logits, labels = predict(model, eval_loader, accelerator)
        measured = score(logits, labels, data.class_names)
        record.update({k: measured[k] for k in ("eval_loss", "top1_accuracy", "top5_accuracy",
                                                "mean_per_class_accuracy")})
        record["per_class_accuracy"] = {k: (None if math.isnan(v) else v)
                                        for k, v in measured["per_class_accuracy_by_name"].items()}

    loop.run(step_fn, evaluate=evaluate, train_mode=linear_probe_mode if args.linear_probe else None)
    unwrapped = loop.finish()
    epoch, global_step, history, train_seconds = loop.epoch, loop.global_step, loop.history, loop.train_seconds
    if loop.stopped:
        accelerator.wait_for_everyone()
        return TrainResult(output_dir=None, run_dir=run_dir, metrics={}, global_step=global_step,
                           epochs_completed=epoch, train_seconds=train_seconds, history=history, stopped=True)

    final = next((h for h in reversed(history) if "top1_accuracy" in h), None)
    if final is None:  # e.g. resumed from the very last checkpoint: evaluate now
        logits, labels = predict(model, eval_loader, accelerator)
        final = score(logits, labels, data.class_names)
    metrics = {k: final[k] for k in ("top1_accuracy", "top5_accuracy", "mean_per_class_accuracy", "eval_loss")}
    per_class = final.get("per_class_accuracy_by_name") or final.get("per_class_accuracy")
    # classes absent from the eval split have no accuracy (NaN): null in the JSON, left out of the card
    per_class = {name: (None if value is None or math.isnan(value) else value) for name, value in per_class.items()}
    results = {**metrics, "per_class_accuracy": per_class, "epochs": epoch, "global_step": global_step,
               "train_seconds": round(train_seconds, 1), "wall_seconds": round(time.time() - started, 1),
               "num_processes": accelerator.num_processes, "train_samples": len(data.train),
               "eval_samples": len(data.eval), "eval_split": data.eval_split, "dataset": data.name}
    accelerator.wait_for_everyone()
    if args.linear_probe:
        fold_linear_probe(unwrapped)
    if is_main:
        card_args = _card_training_args(args, data, accelerator.num_processes, total_steps, train_seconds)
        save_final_model(output_dir, unwrapped, processor, run_dir=run_dir, results=results, args=args,
                         card=(data.name, {**metrics, "per_class_accuracy": {
                             k: v for k, v in per_class.items() if v is not None}}, card_args)
                         if args.model_card else None,
                         overwrite=args.overwrite_output_dir)
        print(f"Saved the model to {output_dir} (top-1 {metrics['top1_accuracy']:.4f} on {len(data.eval)} "
              f"{data.eval_split} images, {train_seconds:.0f}s of training)", flush=True)
    accelerator.wait_for_everyone()
    return TrainResult(output_dir=output_dir, run_dir=run_dir, metrics=results, global_step=global_step,
                       epochs_completed=epoch, train_seconds=train_seconds, history=history)


def train_transform(args, prep: Preprocessing) -> TrainTransform:
    """The training augmentation of `args` (random-resized crop, flip, optional rotations / greyscale)."""
    return TrainTransform(prep, scale=tuple(args.rrc_scale), ratio=tuple(args.rrc_ratio), hflip=args.hflip,
                          augment=args.augment, seed=args.seed,
                          rotation_invariance=getattr(args, "rotation_invariance", False),
                          rotation_prob=getattr(args, "rotation_prob", 0.5),
                          grayscale_prob=getattr(args, "random_grayscale", 0.0))


def classifier_head(model) -> torch.nn.Module:
    """The classification head of a zoo/transformers classifier (`classifier` attribute); clear error otherwise."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module) or not any(True for _ in head.parameters()):
        raise TrainingError(f"--linear-probe needs a model with a trainable `classifier` head; "
                            f"{type(model).__name__} has none")
    return head


class ProbeHead(torch.nn.Module):
    """The linear-probe head of MAE (He et al. 2022, appendix A.2): BatchNorm without affine parameters on the
    pooled features, then the linear classifier. The normalisation makes one learning rate work whatever the scale
    of the frozen features; it is folded into the linear layer when the model is saved (`folded()`), so the saved
    probe is a plain classifier of the same architecture."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(linear.in_features, affine=False, eps=1e-6)
        self.linear = linear

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(features))

    @torch.no_grad()
    def folded(self) -> torch.nn.Linear:
        """The equivalent `nn.Linear` of the head in eval mode (running statistics folded into weight and bias)."""
        scale = torch.rsqrt(self.norm.running_var + self.norm.eps)
        linear = torch.nn.Linear(self.linear.in_features, self.linear.out_features)
        linear.to(self.linear.weight.device, self.linear.weight.dtype)
        linear.weight.copy_(self.linear.weight * scale)
        linear.bias.copy_(self.linear.bias - (self.linear.weight * scale) @ self.norm.running_mean)
        return linear


def freeze_for_linear_probe(model) -> None:
    """Linear probing: the classifier becomes a `ProbeHead` (BatchNorm without affine + the linear layer) and is the
    only part that trains; every other parameter is frozen."""
    head = classifier_head(model)
    if not isinstance(head, torch.nn.Linear):
        raise TrainingError(f"--linear-probe needs a linear `classifier`; {type(model).__name__} has "
                            f"{type(head).__name__}")
    model.classifier = ProbeHead(head)
    for param in model.parameters():
        param.requires_grad_(False)
    for param in head.parameters():
        param.requires_grad_(True)


def fold_linear_probe(model) -> None:
    """Replace a `ProbeHead` classifier by its equivalent linear layer (before saving)."""
    if isinstance(getattr(model, "classifier", None), ProbeHead):
        model.classifier = model.classifier.folded()


def linear_probe_mode(model) -> None:
    """Keep the frozen encoder in eval mode (no dropout or drop-path) while the head (and its BatchNorm) trains."""
    module = getattr(model, "module", model)
    module.eval()
    classifier_head(module).train()

def save_final_model(output_dir: Path, model, processor, *, run_dir: Path, results: dict, args,
                     card, overwrite: bool = False) -> Path:
    """Write model (safetensors), image processor, results, logs and the model card to a temporary sibling of
    `output_dir`, then rename it; on any failure the temporary folder is removed and `output_dir` is untouched.
    `card`: None, (dataset name, metrics, card settings) for `hub.write_model_card`, or a callable(folder)."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # `.NAME.tmp-XXXX/NAME`: the folder being written already has its final name (the model card uses it)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    tmp = staging / output_dir.name
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.mkdir(mode=0o777 & ~umask)
        model.save_pretrained(str(tmp), safe_serialization=True)
        processor.save_pretrained(str(tmp))
        (tmp / "all_results.json").write_text(json.dumps(results, indent=1))
        (tmp / "training_args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1))
        for name in ("log.jsonl", "metrics.csv"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        if callable(card):  # a task-specific card writer (pre-training), given the folder being written
            card(tmp)
        elif card is not None:
            from .. import hub

            dataset_name, card_metrics, card_args = card
            variant = args.model if args.model and _is_variant(args.model) else None
            hub.write_model_card(tmp, dataset_name=dataset_name, metrics=card_metrics, training_args=card_args,
                                 variant=variant)
        if output_dir.exists():
            if not overwrite:
                raise TrainingError(f"{output_dir} appeared while training; not replacing it")
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _is_variant(name: str) -> bool:
    import hf_vision_zoo

    return name in hf_vision_zoo.list_models()


def _card_training_args(args: TrainingArguments, data: ClassificationData, processes: int, total_steps: int,
                        train_seconds: float) -> dict:
    card = {
        "model": args.model or args.pretrained,
        "config_overrides": args.overrides() or None,
        "train_images": len(data.train),
        "eval_split": data.eval_split,
        "eval_images": len(data.eval),
        "epochs": args.epochs,
        "optimizer_steps": total_steps,
        "global_batch_size": args.batch_size * processes * args.gradient_accumulation_steps,
        "processes": processes,
        "recipe": args.recipe,
        "optimizer": f"{'Adam' if args.optimizer == 'adam' else 'AdamW'} (betas {tuple(args.adam_betas)}, weight "
                     f"decay {args.weight_decay})",
        "learning_rate": args.learning_rate,
        "schedule": (f"linear warm-up ({args.warmup_steps if args.warmup_steps is not None else args.warmup_ratio}"
                     f"{' steps' if args.warmup_steps is not None else ' of steps'}), cosine to {args.min_lr}"
                     if args.lr_schedule == "cosine" else
                     f"halving: {args.lr_start_factor} x lr -> lr over epoch 1, then halved linearly every epoch"),
        "layer_decay": args.layer_decay,
        "augmentation": ", ".join(
            ([f"random-resized-crop scale {tuple(args.rrc_scale)}, hflip {args.hflip}"] if args.augment else [])
            + ([f"rotation invariance (90 and 180 degrees, p={args.rotation_prob} each)"]
               if args.rotation_invariance else [])
            + ([f"random grayscale {args.random_grayscale}"] if args.random_grayscale else [])) or "none",
        "adversarial_training": (f"fast FGSM with random start (Wong et al. 2020), L-inf eps "
                                 f"{_as_255(args.adv_epsilon)}, step "
                                 f"{_as_255(args.adv_alpha or 1.25 * args.adv_epsilon)}"
                                 if args.adversarial == "fgsm" else None),
        "mixup / cutmix": f"{args.mixup} / {args.cutmix}",
        "label_smoothing": args.label_smoothing,
        "gradient_clipping": args.max_grad_norm or None,
        "mixed_precision": args.mixed_precision or "no",
        "seed": args.seed,
        "train_time": f"{train_seconds:.0f} s",
    }
    if args.linear_probe:
        card["linear_probe"] = ("frozen encoder; only the linear classifier trained, on BatchNorm-normalised pooled "
                                "features (folded into the saved linear layer)")
    if args.pretrained:
        card["base_model"] = args.pretrained
    return {k: v for k, v in card.items() if v is not None}


def validate_run_settings(args) -> None:
    """Checks shared by every loop (`train`, `pretrain`): output folder, lengths, batch sizes, optimiser, logs."""
    if not args.output_dir:
        raise TrainingError("--output-dir is required")
    checks = [
        (args.epochs >= 1 or args.max_steps, f"--epochs must be >= 1, got {args.epochs}"),
        (args.max_steps is None or args.max_steps >= 1, f"--max-steps must be >= 1, got {args.max_steps}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (args.gradient_accumulation_steps >= 1, "--gradient-accumulation-steps must be >= 1"),
        (args.learning_rate > 0, f"--learning-rate must be > 0, got {args.learning_rate}"),
        (0 <= args.min_lr <= args.learning_rate, "--min-lr must be in [0, --learning-rate]"),
        (args.max_grad_norm >= 0, "--max-grad-norm must be >= 0"),
        (0 <= args.warmup_ratio < 1, "--warmup-ratio must be in [0, 1)"),
        (args.warmup_steps is None or args.warmup_steps >= 0, "--warmup-steps must be >= 0"),
        (args.num_workers >= 0, "--num-workers must be >= 0"),
        (args.checkpoint_every >= 0, "--checkpoint-every must be >= 0"),
        (args.max_train_samples is None or args.max_train_samples >= 1, "--max-train-samples must be >= 1"),
        (args.stop_after_steps is None or args.stop_after_steps >= 1, "--stop-after-steps must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainingError(message)


def _validate(args: TrainingArguments) -> None:
    validate_run_settings(args)
    checks = [
        (args.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {args.eval_batch_size}"),
        (args.input_size is None or args.input_size >= 1, f"--input-size must be >= 1, got {args.input_size}"),
        (0 <= args.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        (args.mixup >= 0 and args.cutmix >= 0, "--mixup and --cutmix alphas must be >= 0"),
        (0 <= args.rotation_prob <= 1, f"--rotation-prob must be in [0, 1], got {args.rotation_prob}"),
        (0 <= args.random_grayscale <= 1, f"--random-grayscale must be in [0, 1], got {args.random_grayscale}"),
        (args.adversarial in ("none", "fgsm"), f"--adversarial must be 'none' or 'fgsm', got {args.adversarial!r}"),
        (args.optimizer in ("adamw", "adam"), f"--optimizer must be 'adamw' or 'adam', got {args.optimizer!r}"),
        (args.lr_schedule in ("cosine", "halving"),
         f"--lr-schedule must be 'cosine' or 'halving', got {args.lr_schedule!r}"),
        (0 < args.lr_start_factor, f"--lr-start-factor must be > 0, got {args.lr_start_factor}"),
        (args.recipe is None or args.recipe in RECIPES,
         f"unknown --recipe {args.recipe!r}; known recipes: {', '.join(sorted(RECIPES))}"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainingError(message)
    if args.adversarial != "none":
        try:
            check_attack_settings(args.adv_epsilon, args.adv_alpha)
        except AttackError as err:
            raise TrainingError(f"--adv-epsilon / --adv-alpha: {err}") from err


def _as_255(value: float) -> str:
    """A pixel amount as text: short decimals as they are (0.1), else 2/255-style when it is a whole or half
    number of grey levels, else 4 significant digits."""
    if len(f"{value:g}") <= 5:
        return f"{value:g}"
    levels = value * 255
    return f"{levels:g}/255" if abs(levels - round(levels * 2) / 2) < 1e-6 else f"{value:.4g}"


def halving_schedule(optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                     start_factor: float = 0.4) -> torch.optim.lr_scheduler.LambdaLR:
    """The Brain-Score recipe's per-step LR (`custom_lr_scheduler_v1` of the official code): over epoch 1 linear
    from `start_factor` x lr to lr (8e-5 -> 2e-4), then over epoch e (e >= 2) linear from lr / 2**(e-2) to
    lr / 2**(e-1); step i of an epoch of n steps sits at fraction i / n of the way."""
    def boundary(epoch: int) -> float:
        return start_factor if epoch == 0 else 0.5 ** (epoch - 1)

    def factor(step: int) -> float:
        epoch, i = divmod(step, steps_per_epoch)
        return boundary(epoch) + (boundary(epoch + 1) - boundary(epoch)) * i / steps_per_epoch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _check_resumable(saved: dict, current: dict, path: Path) -> None:
    if saved.get("task") != current.get("task"):
        raise TrainingError(f"checkpoint {path} belongs to a {saved.get('task') or 'classification'} run, not a "
                            f"{current.get('task') or 'classification'} run")
    different = {k: (saved.get(k), current.get(k)) for k in RUN_DEFINING if saved.get(k) != current.get(k)}
    if different:
        details = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in different.items())
        raise TrainingError(f"checkpoint {path} belongs to a different run ({details}); resume with the same "
                            f"settings or start a new --run-dir")
    changed = [k for k in ("epochs", "max_steps", "learning_rate", "total_steps", "adversarial", "adv_epsilon",
                           "adv_alpha", "rotation_invariance") if k in saved and saved.get(k) != current.get(k)]
    if changed:
        warnings.warn(f"resuming {path} with changed {', '.join(changed)}: the run will not match an "
                      f"uninterrupted one", stacklevel=3)


def _tracker(report_to: str):
    if report_to == "none":
        return None
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if report_to == "tensorboard":
            raise TrainingError("--report-to tensorboard needs the tensorboard package (pip install tensorboard)")
        return None
    return "tensorboard"


def _progress_bar(args, is_main: bool, total: int, initial: int):
    if not (args.progress and is_main):
        return None
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()  # redrawn 10x a second on a terminal, every 30 s into a log file
    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, file=sys.stderr,
                mininterval=0.1 if interactive else 30.0)


def _format_record(record: dict) -> str:
    parts = [f"epoch {record['epoch']}", f"step {record['step']}", f"train_loss {record['train_loss']:.4f}"]
    if "top1_accuracy" in record:
        parts += [f"eval_loss {record['eval_loss']:.4f}", f"top1 {record['top1_accuracy']:.4f}",
                  f"top5 {record['top5_accuracy']:.4f}"]
    parts.append(f"{record['epoch_seconds']:.0f}s")
    return " | ".join(parts)


def _append_logs(run_dir: Path, record: dict, fields=CSV_FIELDS) -> None:
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    new = not (run_dir / "metrics.csv").exists()
    with open(run_dir / "metrics.csv", "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: record.get(k, "") for k in fields})


def _rewrite_logs(run_dir: Path, history: list[dict], fields=CSV_FIELDS) -> None:
    """Start the logs afresh from the checkpoint's history (drops lines an interrupted run wrote after it)."""
    for name in ("log.jsonl", "metrics.csv"):
        (run_dir / name).unlink(missing_ok=True)
    for record in history:
        _append_logs(run_dir, record, fields)


def _flat_config(args) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
            for k, v in dataclasses.asdict(args).items() if v is not None}


def weights_digest(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def _write_rank_report(run_dir: Path, rank: int, world: int, rows: dict, model, step: int) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    report = {"process_index": rank, "num_processes": world, "global_step": step,
              "rows_per_epoch": {str(k): v for k, v in rows.items()}, "weights_sha256": weights_digest(model)}
    (Path(run_dir) / f"rank_{rank}.json").write_text(json.dumps(report))


# ------------------------------------------------------------------------------------------------- evaluation
def evaluate_model(model_dir: str | os.PathLike, dataset: str = "fashion_mnist", *, dataset_config: str | None = None,
                   eval_split: str | None = None, validation_split: float = 0.1, seed: int = 42,
                   image_column: str | None = None, label_column: str | None = None,
                   max_eval_samples: int | None = None, batch_size: int = 256,
                   verify_images: bool = True, pgd_steps: int = 0, adv_epsilon: float = 2 / 255,
                   adv_alpha: float | None = None, pgd_restarts: int = 1) -> dict[str, Any]:
    """Evaluate a saved model folder on a dataset's eval split: top-1, top-5, per-class accuracy and loss; with
    `pgd_steps >= 1` also the robust top-1/top-5 under an L-inf PGD attack of radius `adv_epsilon` (pixel units,
    e.g. 2/255), step `adv_alpha` (default 2.5 * eps / steps), `pgd_restarts` random restarts seeded by `seed`."""
    import hf_vision_zoo  # noqa: F401  (registers the zoo's Auto classes)
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    if batch_size < 1:
        raise TrainingError(f"batch size must be >= 1, got {batch_size}")
    if isinstance(pgd_steps, bool) or not isinstance(pgd_steps, int) or pgd_steps < 0:
        raise TrainingError(f"--pgd-steps must be an integer >= 0 (0 = no attack), got {pgd_steps!r}")
    if pgd_steps:
        try:
            check_attack_settings(adv_epsilon, adv_alpha, pgd_steps, pgd_restarts)
        except AttackError as err:
            raise TrainingError(f"PGD settings: {err}") from err
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise TrainingError(f"{folder} is not a saved model folder (no config.json)")
    data = load_classification_dataset(dataset, config=dataset_config, image_column=image_column,
                                       label_column=label_column, eval_split=eval_split,
                                       validation_split=validation_split, seed=seed, max_train_samples=None,
                                       max_eval_samples=max_eval_samples, verify_images=verify_images)
    config = AutoConfig.from_pretrained(str(folder))
    if config.num_labels != data.num_labels:
        raise TrainingError(f"The model in {folder} has num_labels={config.num_labels} "
                            f"({_label_preview(config.id2label)}) but {data.name} has {data.num_labels} classes "
                            f"({_label_preview(data.id2label)})")
    if _names(config.id2label) != data.class_names and not _default_names(config.id2label):
        warnings.warn(f"The model's class names ({_label_preview(config.id2label)}) differ from the dataset's "
                      f"({_label_preview(data.id2label)}); scoring by class index", stacklevel=2)
    try:
        model = AutoModelForImageClassification.from_pretrained(str(folder))
        processor = AutoImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise TrainingError(f"could not load the model/image processor in {folder}: {err}") from err
    eval_set = TransformedDataset(data.eval, EvalTransform(processor, getattr(config, "num_channels", 3)),
                                  data.image_column, data.label_column)
    loader = torch.utils.data.DataLoader(eval_set, batch_size=batch_size, shuffle=False, collate_fn=collate)
    if not pgd_steps:
        logits, labels = predict(model, loader)
        result = score(logits, labels, data.class_names)
    else:
        prep = Preprocessing.from_image_processor(processor, getattr(config, "num_channels", 3))
        alpha = adv_alpha if adv_alpha is not None else 2.5 * adv_epsilon / pgd_steps
        logits, robust, labels = predict_robust(model, loader, epsilon=adv_epsilon, steps=pgd_steps, alpha=alpha,
                                                restarts=pgd_restarts, mean=prep.mean, std=prep.std, seed=seed)
        result = score(logits, labels, data.class_names)
        top5 = robust.topk(min(5, robust.shape[-1]), dim=-1).indices
        result.update({
            "robust_top1_accuracy": float((robust.argmax(-1) == labels).float().mean()),
            "robust_top5_accuracy": float((top5 == labels[:, None]).any(-1).float().mean()),
            "robust_eval_loss": float(F.cross_entropy(robust, labels).item()),
            "attack": {"name": "pgd", "norm": "linf", "epsilon": adv_epsilon, "epsilon_255": adv_epsilon * 255,
                       "alpha": alpha, "steps": pgd_steps, "restarts": pgd_restarts, "random_start": True,
                       "seed": seed, "space": "pixels in [0, 1] (before the processor's normalisation)"},
        })
    result.update({"dataset": data.name, "eval_split": data.eval_split, "model_dir": str(folder)})
    return result


def _json_safe(value):
    """NaN (a class with no eval images) -> null, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def format_metrics(result: dict) -> str:
    lines = [f"{result.get('model_dir', 'model')} on {result.get('dataset')} ({result.get('eval_split')}, "
             f"{result['num_samples']} images)",
             f"  top-1 accuracy  {result['top1_accuracy']:.4f}",
             f"  top-5 accuracy  {result['top5_accuracy']:.4f}",
             f"  mean per-class  {result['mean_per_class_accuracy']:.4f}",
             f"  loss            {result['eval_loss']:.4f}"]
    attack = result.get("attack")
    if attack:
        lines += [f"  robust top-1    {result['robust_top1_accuracy']:.4f}  (PGD-{attack['steps']} L-inf, eps "
                  f"{_as_255(attack['epsilon'])}, step {_as_255(attack['alpha'])}, {attack['restarts']} restart(s))",
                  f"  robust loss     {result['robust_eval_loss']:.4f}"]
    lines.append("  per class:")
    by_name = result.get("per_class_accuracy_by_name") or {}
    counts = result.get("per_class_count") or []
    width = max((len(n) for n in by_name), default=5)
    for i, (name, value) in enumerate(by_name.items()):
        count = f"  (n={counts[i]})" if i < len(counts) else ""
        lines.append(f"    {name:<{width}}  {value:.4f}{count}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- entry points
TRAIN_DESCRIPTION = ("Train any registered image-classification model with accelerate (1 process, or several: "
                     "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ... on CPU). Writes the "
                     "final model with its model card to --output-dir; checkpoints and logs go to --run-dir.")
EVAL_DESCRIPTION = ("Evaluate a saved model folder on a dataset: top-1, top-5 and per-class accuracy, and with "
                    "--pgd-steps N the robust top-1 under an L-inf PGD attack (--adv-epsilon 2/255).")


def main(argv: list[str] | None = None) -> int:
    """`hf-vision-zoo train` / `examples/train_image_classification.py`: parse `argv`, train, return 0 (1 on a
    clear error, printed to stderr)."""
    return run_main(train, TrainingArguments, argv, "hf-vision-zoo train", TRAIN_DESCRIPTION)


def run_main(run, arguments_class, argv: list[str] | None, command: str, description: str) -> int:
    """Parse `argv` into `arguments_class`, call `run(args)`; clear errors are printed, exit code 1."""
    prog = command if argv is not None else Path(sys.argv[0]).name
    args = parse_into(arguments_class, argv, prog=prog, description=description)
    try:
        result = run(args)
    except (TrainingError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.stopped:
        print(f"Stopped after {result.global_step} steps (--stop-after-steps); resume with --resume latest",
              flush=True)
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    """`hf-vision-zoo evaluate DIR`: print top-1 / top-5 / per-class accuracy (and write them with --output-json)."""
    prog = "hf-vision-zoo evaluate" if argv is not None else Path(sys.argv[0]).name
    args = parse_into(EvaluationArguments, argv, prog=prog, description=EVAL_DESCRIPTION)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        result = evaluate_model(args.model_dir, args.dataset, dataset_config=args.dataset_config,
                                eval_split=args.eval_split, validation_split=args.validation_split, seed=args.seed,
                                image_column=args.image_column, label_column=args.label_column,
                                max_eval_samples=args.max_eval_samples, batch_size=args.batch_size,
                                verify_images=args.verify_images, pgd_steps=args.pgd_steps,
                                adv_epsilon=args.adv_epsilon, adv_alpha=args.adv_alpha,
                                pgd_restarts=args.pgd_restarts)
    except (TrainingError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_metrics(result))
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(json.dumps(_json_safe(result), indent=1))
    return 0


__all__ = ["OptimizationLoop", "ProbeHead", "StepOutput", "TrainResult", "TrainingError", "evaluate_main",
           "evaluate_model", "fold_linear_probe", "freeze_for_linear_probe", "halving_schedule", "main", "predict",
           "predict_robust",
           "resolve_checkpoint", "save_checkpoint", "save_final_model", "score", "train", "weights_digest"]
