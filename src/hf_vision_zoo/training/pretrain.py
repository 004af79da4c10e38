"""Self-supervised pre-training of any registered `XForPreTraining` model (registry task "pretraining": MAE,
He et al. 2022, https://arxiv.org/abs/2111.06377, and the masked-image-modeling methods built on it) with accelerate.

`pretrain(PreTrainingArguments)` builds `create_model(name, task="pretraining", **overrides)`, trains it on the
images of a dataset (labels ignored) and writes the whole pre-training model (encoder + decoder/heads) with its image
processor and a model card to `output_dir`. Everything else is the classification loop's machinery (`loop.py`):
the same data pipeline and augmentation (`--rrc-scale 0.2 1.0` + flip by default, MAE's), AdamW parameter groups
(weight-decay exclusions, the model's `optim_hints`, optional layer decay), warm-up + cosine schedule, gradient
accumulation and clipping, bf16, seeding, `accelerator.save_state` checkpoints with exact `--resume`, logs and the
atomic final save. The loss is the model output's `.loss`; any scalar `*_loss` fields of the output (e.g. HPM's
`reconstruction_loss` and `loss_prediction_loss`) are logged as `train_<name>` too. The random masks are drawn from
the global torch RNG, which the loop reseeds before every micro-batch, so a resumed run matches an uninterrupted one.

Progress-dependent schedules: if the model defines `set_progress(progress)`, it is called before the first
micro-batch of every optimizer step with `progress = completed optimizer steps / total optimizer steps` (0 at the
first step, (T-1)/T at the last).

After pre-training, the encoder is fine-tuned or linearly probed through the classification loop:
`hf-vision-zoo train --pretrained OUTPUT_DIR [--linear-probe] ...` (the folder loads with
`AutoModelForImageClassification`; a new classifier is made for the dataset's classes, the decoder is dropped).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .arguments import PreTrainingArguments
from .data import (
    EpochShuffleSampler,
    Preprocessing,
    TransformedDataset,
    collate,
    load_classification_dataset,
)
from .loop import (
    OptimizationLoop,
    StepOutput,
    TrainingError,
    TrainResult,
    _is_variant,
    fit_processor_to_model,
    make_accelerator,
    make_optimizer,
    make_schedule,
    prepare_run_dirs,
    read_trainer_state,
    resolve_checkpoint,
    run_main,
    save_final_model,
    train_transform,
    validate_run_settings,
)

PRETRAIN_CSV_FIELDS = ("epoch", "step", "lr", "train_loss", "epoch_seconds", "train_seconds")


PreTrainResult = TrainResult  # the same fields: output_dir, run_dir, metrics, global_step, ...


def pretraining_architectures() -> list[str]:
    """Architectures with a self-supervised pre-training model (registry task "pretraining")."""
    from .. import registry

    return [name for name in registry.list_architectures() if pretraining_class(name) is not None]


def pretraining_class(name: str):
    """The `XForPreTraining` class of a registered architecture or variant, or None if it has none: the registry's
    "pretraining" task, else the class registered with `AutoModelForPreTraining` for its config."""
    from transformers import AutoModelForPreTraining

    from .. import registry

    arch = registry.get_architecture(registry.get_variant(name).architecture if name in registry.list_models()
                                     else name)
    if "pretraining" in arch.model_classes:
        return arch.model_classes["pretraining"]
    return AutoModelForPreTraining._model_mapping.get(arch.config_class, None)


def build_pretraining_model(name: str | None, overrides: dict):
    """A randomly initialised pre-training model of `name` with config `overrides`; clear errors for unknown names,
    architectures without a pre-training model and invalid settings (e.g. mask_ratio outside [0, 1))."""
    from huggingface_hub.errors import StrictDataclassError

    from .. import registry

    if not name:
        raise TrainingError("--model is required: an architecture with a pre-training model, one of "
                            f"{', '.join(pretraining_architectures())}")
    try:
        model_class = pretraining_class(name)
    except KeyError as err:
        raise TrainingError(f"unknown model {name!r}: {err.args[0] if err.args else err}") from err
    if model_class is None:
        raise TrainingError(f"{name!r} has no self-supervised pre-training model (registry task 'pretraining'); "
                            f"architectures that have one: {', '.join(pretraining_architectures())}. "
                            f"To train a classifier use `hf-vision-zoo train --model {name}`.")
    try:
        config = registry.get_config(name, **overrides)
        return model_class(config)
    except (KeyError, TypeError, ValueError, StrictDataclassError) as err:
        raise TrainingError(f"cannot build the pre-training model {name!r} with overrides {overrides}: "
                            f"{err}") from err


def loss_terms(output) -> dict[str, torch.Tensor]:
    """The scalar `*_loss` fields of a pre-training output other than `loss` (logged as separate terms)."""
    items = output.items() if hasattr(output, "items") else []
    return {key: value for key, value in items
            if key != "loss" and key.endswith("_loss") and torch.is_tensor(value) and value.numel() == 1}


def pretrain(args: PreTrainingArguments) -> PreTrainResult:
    """Pre-train a self-supervised model as described by `args` (see `PreTrainingArguments` / `--help`)."""
    from accelerate.utils import set_seed

    from .. import registry

    started = time.time()
    validate_run_settings(args)
    output_dir, run_dir = prepare_run_dirs(args)
    overrides = args.overrides()
    set_seed(args.seed)
    model = build_pretraining_model(args.model, overrides)  # before the Accelerator: bad models fail fast
    accelerator, log_with = make_accelerator(args, run_dir)
    is_main = accelerator.is_main_process
    resume_path = resolve_checkpoint(args.resume, run_dir) if args.resume else None
    resume_state = read_trainer_state(resume_path) if resume_path else None

    with accelerator.main_process_first():
        data = load_classification_dataset(
            args.dataset, config=args.dataset_config, image_column=args.image_column, label_column=args.label_column,
            seed=args.seed, max_train_samples=args.max_train_samples, max_eval_samples=1,
            verify_images=args.verify_images)
    processor = fit_processor_to_model(registry.create_image_processor(args.model), model.config)
    num_channels = getattr(model.config, "num_channels", 3)
    prep = Preprocessing.from_image_processor(processor, num_channels)
    train_set = TransformedDataset(data.train, train_transform(args, prep), data.image_column, data.label_column,
                                   train=True)
    sampler = EpochShuffleSampler(len(train_set), seed=args.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, sampler=sampler,
                                               collate_fn=collate, num_workers=args.num_workers)
    optimizer = make_optimizer(args, model)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    scheduler, total_steps, num_epochs = make_schedule(args, optimizer, len(train_loader))
    accelerator.register_for_checkpointing(scheduler)
    run_info = {"model": args.model, "model_overrides": overrides, "dataset": args.dataset,
                "dataset_config": args.dataset_config, "max_train_samples": args.max_train_samples,
                "batch_size": args.batch_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "seed": args.seed, "num_processes": accelerator.num_processes, "epochs": args.epochs,
                "max_steps": args.max_steps, "learning_rate": args.learning_rate, "total_steps": total_steps,
                "task": "pretraining"}
    loop = OptimizationLoop(args, accelerator, model, optimizer, scheduler, train_loader, sampler, train_set,
                            run_dir=run_dir, run_info=run_info, total_steps=total_steps, num_epochs=num_epochs,
                            log_with=log_with, csv_fields=PRETRAIN_CSV_FIELDS, format_record=_format_record)
    loop.restore(resume_path, resume_state)
    loop.start_logs("pretrain")

    unwrapped = accelerator.unwrap_model(model)
    set_progress = getattr(unwrapped, "set_progress", None)

    def before_step(global_step: int) -> None:
        set_progress(global_step / total_steps)

    def step_fn(batch, generator) -> StepOutput:
        output = model(pixel_values=batch["pixel_values"])
        loss = getattr(output, "loss", None)
        if loss is None or not torch.is_tensor(loss) or loss.numel() != 1:
            raise TrainingError(f"{type(unwrapped).__name__}(pixel_values) must return a scalar `.loss`")
        terms = {k: v.detach().float() for k, v in loss_terms(output).items()}
        return StepOutput(loss.float(), batch["pixel_values"].shape[0], terms)

    loop.run(step_fn, before_step=before_step if callable(set_progress) else None)
    unwrapped = loop.finish()
    if loop.stopped:
        accelerator.wait_for_everyone()
        return PreTrainResult(output_dir=None, run_dir=run_dir, metrics={}, global_step=loop.global_step,
                              epochs_completed=loop.epoch, train_seconds=loop.train_seconds, history=loop.history,
                              stopped=True)
    last = loop.history[-1] if loop.history else {}
    losses = {k: v for k, v in last.items() if k.startswith("train_") and k != "train_seconds"}
    results = {**losses, "epochs": loop.epoch, "global_step": loop.global_step,
               "train_seconds": round(loop.train_seconds, 1), "wall_seconds": round(time.time() - started, 1),
               "num_processes": accelerator.num_processes, "train_samples": len(data.train), "dataset": data.name,
               "method": method_name(unwrapped), "task": "pretraining"}
    accelerator.wait_for_everyone()
    if is_main:
        card_args = _card_settings(args, unwrapped, len(data.train), accelerator.num_processes, total_steps,
                                   loop.train_seconds)
        card = ((lambda folder: write_pretraining_card(folder, data.name, losses, card_args))
                if args.model_card and losses else None)
        save_final_model(output_dir, unwrapped, processor, run_dir=run_dir, results=results, args=args, card=card,
                         overwrite=args.overwrite_output_dir)
        print(f"Saved the pre-trained {method_name(unwrapped)} model to {output_dir} (final train loss "
              f"{losses.get('train_loss', float('nan')):.4f}, {loop.global_step} steps, {loop.train_seconds:.0f}s "
              f"of training)", flush=True)
    accelerator.wait_for_everyone()
    return PreTrainResult(output_dir=output_dir, run_dir=run_dir, metrics=results, global_step=loop.global_step,
                          epochs_completed=loop.epoch, train_seconds=loop.train_seconds, history=loop.history)


def method_name(model) -> str:
    """The pre-training method's display name (the architecture's, e.g. "MAE"), from the model's config."""
    from .. import registry

    model_type = getattr(model.config, "model_type", "")
    for name in registry.list_architectures():
        arch = registry.get_architecture(name)
        if getattr(arch.config_class, "model_type", None) == model_type:
            return arch.display_name or arch.name
    return type(model).__name__.replace("ForPreTraining", "")


def _card_settings(args, model, train_images: int, processes: int, total_steps: int, train_seconds: float) -> dict:
    config = model.config
    method = {k: getattr(config, k) for k in ("mask_ratio", "norm_pix_loss") if hasattr(config, k)}
    card = {
        "checkpoint": f"self-supervised pre-training ({method_name(model)}, `{type(model).__name__}`); no classifier",
        "model": args.model,
        "config_overrides": args.overrides() or None,
        "method_settings": method or None,
        "train_images": train_images,
        "labels": "not used",
        "epochs": args.epochs,
        "optimizer_steps": total_steps,
        "global_batch_size": args.batch_size * processes * args.gradient_accumulation_steps,
        "processes": processes,
        "optimizer": f"AdamW (betas {tuple(args.adam_betas)}, weight decay {args.weight_decay})",
        "learning_rate": args.learning_rate,
        "schedule": f"linear warm-up ({args.warmup_steps if args.warmup_steps is not None else args.warmup_ratio}"
                    f"{' steps' if args.warmup_steps is not None else ' of steps'}), cosine to {args.min_lr}",
        "layer_decay": args.layer_decay,
        "augmentation": (f"random-resized-crop scale {tuple(args.rrc_scale)}, hflip {args.hflip}" if args.augment
                         else "none"),
        "gradient_clipping": args.max_grad_norm or None,
        "mixed_precision": args.mixed_precision or "no",
        "seed": args.seed,
        "train_time": f"{train_seconds:.0f} s",
    }
    return {k: v for k, v in card.items() if v is not None}


def write_pretraining_card(folder: Path, dataset_name: str, losses: dict, settings: dict) -> Path:
    """The model card of a pre-training checkpoint (`hub.build_model_card` with `task="pretraining"`: a
    self-supervised encoder's tags, pipeline tag, description and usage, with the final losses)."""
    from .. import hub

    card = hub.build_model_card(folder, dataset_name=dataset_name, metrics=losses, training_args=settings,
                                variant=args_variant(settings.get("model")), task="pretraining")
    path = Path(folder) / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return path


def args_variant(model_name: str | None) -> str | None:
    return model_name if model_name and _is_variant(model_name) else None


def _format_record(record: dict) -> str:
    parts = [f"epoch {record['epoch']}", f"step {record['step']}", f"lr {record['lr']:.2e}",
             f"train_loss {record['train_loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items()
              if k.startswith("train_") and k not in ("train_loss", "train_seconds")]
    parts.append(f"{record['epoch_seconds']:.0f}s")
    return " | ".join(parts)


PRETRAIN_DESCRIPTION = ("Self-supervised pre-training of any registered XForPreTraining model (e.g. --model mae) "
                        "with accelerate, on the images of a dataset (labels ignored). Writes the pre-training "
                        "checkpoint with its model card to --output-dir; checkpoints and logs go to --run-dir. "
                        "Then: `hf-vision-zoo train --pretrained OUTPUT_DIR [--linear-probe] ...`.")


def pretrain_main(argv: list[str] | None = None) -> int:
    """`hf-vision-zoo pretrain` / `examples/pretrain.py`: parse `argv`, pre-train, return 0 (1 on a clear error)."""
    return run_main(pretrain, PreTrainingArguments, argv, "hf-vision-zoo pretrain", PRETRAIN_DESCRIPTION)


__all__ = ["PreTrainResult", "build_pretraining_model", "loss_terms", "method_name", "pretrain", "pretrain_main",
           "pretraining_architectures", "pretraining_class", "write_pretraining_card"]
