"""The training and evaluation settings (dataclasses) and their command lines (argparse, one `--option` per field,
each with its help text). `hf-vision-zoo train ...` and `examples/train_image_classification.py` use these."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin


def _opt(help: str, **extra) -> Any:  # noqa: A002
    default = extra.pop("default", None)
    factory = extra.pop("default_factory", None)
    metadata = {"help": help, **extra}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainingArguments:
    """Everything `train()` needs; every field is also a command-line option (`output_dir` -> `--output-dir`)."""

    # what to train
    output_dir: str = _opt("Folder for the final model (config, safetensors weights, image processor, model card, "
                           "results). Written to a temporary sibling and renamed only when complete.",
                           required=True)
    model: str | None = _opt("Registry name to build a randomly initialised model from: a variant "
                             "(e.g. swin_tiny_patch4_window7_224.ms_in1k) or an architecture (e.g. swin). "
                             "See `hf-vision-zoo list`. Give this or --pretrained.")
    pretrained: str | None = _opt("A saved model folder (save_pretrained output) to fine-tune instead of --model.")
    model_overrides: list[str] = _opt("Config overrides KEY=VALUE (VALUE parsed as JSON when possible), e.g. "
                                      "image_size=28 patch_size=2 depths=[2,2] num_heads=[2,4] drop_path_rate=0.1.",
                                      default_factory=list, nargs="*", metavar="KEY=VALUE")
    ignore_mismatched_sizes: bool = _opt("With --pretrained: re-initialise the classifier when the checkpoint's "
                                         "num_labels differs from the dataset's classes (otherwise an error).",
                                         default=False)
    crop_pct: float | None = _opt("Evaluation crop: resize the short side to image_size / crop_pct, then centre-crop "
                                  "(1.0 = resize straight to image_size). Default: the variant's preprocessing.",
                                  type=float)
    # data
    dataset: str = _opt("'fashion_mnist' (Debian's dataset-fashion-mnist idx files), an image folder "
                        "(DIR/<label>/<img> or DIR/<split>/<label>/<img>), or a Hub dataset name (online only).",
                        default="fashion_mnist")
    dataset_config: str | None = _opt("Hub dataset configuration name.")
    eval_split: str | None = _opt("Split to evaluate on (default: validation, valid, val or test, whichever exists; "
                                  "otherwise --validation-split of train is held out).")
    validation_split: float = _opt("Fraction of train held out for evaluation when the data has no eval split.",
                                   default=0.1, type=float)
    image_column: str | None = _opt("Image column of a Hub dataset (default: the first Image feature).")
    label_column: str | None = _opt("Label column of a Hub dataset (default: the first ClassLabel feature).")
    max_train_samples: int | None = _opt("Use only the first N training images (quick runs, tests).", type=int)
    max_eval_samples: int | None = _opt("Evaluate on only the first N eval images.", type=int)
    verify_images: bool = _opt("Decode every image of an image folder once at load time and skip (with a warning) "
                               "corrupt or truncated files. --no-verify-images saves that pass; a corrupt file is "
                               "then an error when it is reached.", default=True)
    num_workers: int = _opt("DataLoader worker processes (0 = load in the training process, best on 2 cores).",
                            default=0, type=int)
    # augmentation
    augment: bool = _opt("Random-resized-crop + horizontal flip for training (--no-augment: just resize).",
                         default=True)
    rrc_scale: list[float] = _opt("Random-resized-crop area range (min max), as a fraction of the image.",
                                  default_factory=lambda: [0.08, 1.0], nargs=2, type=float, metavar=("MIN", "MAX"))
    rrc_ratio: list[float] = _opt("Random-resized-crop aspect-ratio range (min max).",
                                  default_factory=lambda: [3 / 4, 4 / 3], nargs=2, type=float, metavar=("MIN", "MAX"))
    hflip: float = _opt("Probability of a horizontal flip.", default=0.5, type=float)
    mixup: float = _opt("Mixup alpha (0 = off).", default=0.0, type=float)
    cutmix: float = _opt("CutMix alpha (0 = off).", default=0.0, type=float)
    mix_prob: float = _opt("Probability of applying mixup/cutmix to a batch.", default=1.0, type=float)
    mix_switch_prob: float = _opt("With both mixup and cutmix on: probability of cutmix for a mixed batch.",
                                  default=0.5, type=float)
    label_smoothing: float = _opt("Label smoothing of the cross-entropy targets.", default=0.1, type=float)
    # optimisation
    epochs: int = _opt("Number of passes over the training data.", default=10, type=int)
    max_steps: int | None = _opt("Stop after this many optimizer steps (overrides --epochs for the schedule).",
                                 type=int)
    batch_size: int = _opt("Images per process per forward pass (global batch = this x processes x "
                           "--gradient-accumulation-steps).", default=64, type=int)
    eval_batch_size: int = _opt("Images per process per evaluation batch.", default=256, type=int)
    learning_rate: float = _opt("Peak AdamW learning rate (reached after warm-up).", default=1e-3, type=float)
    min_lr: float = _opt("Learning rate at the end of the cosine schedule.", default=1e-6, type=float)
    weight_decay: float = _opt("AdamW weight decay (not applied to biases, norms and position tables).",
                               default=0.05, type=float)
    adam_betas: list[float] = _opt("AdamW betas (momentum and second-moment decay).",
                                   default_factory=lambda: [0.9, 0.999], nargs=2, type=float,
                                   metavar=("BETA1", "BETA2"))
    warmup_steps: int | None = _opt("Linear warm-up steps (default: --warmup-ratio of all steps).", type=int)
    warmup_ratio: float = _opt("Warm-up length as a fraction of all optimizer steps.", default=0.05, type=float)
    layer_decay: float | None = _opt("Layer-wise learning-rate decay (e.g. 0.75 for fine-tuning): layer i of N gets "
                                     "lr * decay**(N+1-i); off by default.", type=float)
    gradient_accumulation_steps: int = _opt("Forward/backward passes per optimizer step.", default=1, type=int)
    max_grad_norm: float = _opt("Clip the gradient norm to this (0 = no clipping).", default=1.0, type=float)
    mixed_precision: str | None = _opt("'bf16' for bfloat16 autocast, 'no' for fp32 (default: accelerate's "
                                       "launch setting, else fp32).", choices=["no", "bf16"])
    seed: int = _opt("Seed of model initialisation, data order, augmentation and dropout.", default=42, type=int)
    num_threads: int | None = _opt("torch intra-op threads per process (default: torch's choice).", type=int)
    # checkpoints, logs
    run_dir: str | None = _opt("Folder for checkpoints and logs during training (default: OUTPUT_DIR-run).")
    checkpoint_every: int = _opt("Save a resumable checkpoint (accelerator.save_state) every N optimizer steps "
                                 "(0 = only at the end of each epoch).", default=0, type=int)
    checkpoint_each_epoch: bool = _opt("Also checkpoint at the end of every epoch.", default=True)
    keep_checkpoints: int = _opt("How many of the newest checkpoints to keep (0 = all).", default=2, type=int)
    resume: str | None = _opt("Continue from a checkpoint folder, or 'latest' for the newest one in "
                              "RUN_DIR/checkpoints: model, optimizer, schedule, RNG and data position are restored "
                              "exactly.")
    overwrite_output_dir: bool = _opt("Replace OUTPUT_DIR if it already holds a model.", default=False)
    eval_every: int = _opt("Evaluate every N epochs (the last epoch is always evaluated).", default=1, type=int)
    log_every: int = _opt("Update the progress bar's loss every N optimizer steps.", default=10, type=int)
    report_to: str = _opt("'auto' (TensorBoard when installed), 'tensorboard' or 'none'; the JSON-lines and CSV "
                          "logs are always written.", default="auto", choices=["auto", "tensorboard", "none"])
    progress: bool = _opt("Show a progress bar (main process only).", default=True)
    model_card: bool = _opt("Write a model card (README.md) into the final folder.", default=True)
    stop_after_steps: int | None = _opt("Testing aid: stop after N optimizer steps as if the run were killed "
                                        "(checkpoints already written stay; no final model).", type=int)
    rank_report: bool = _opt("Write RUN_DIR/rank_<i>.json per process: the dataset rows it trained on and a hash "
                             "of its final weights (to check data sharding and that DDP ranks agree).",
                             default=False)

    def overrides(self) -> dict[str, Any]:
        return parse_overrides(self.model_overrides)


@dataclass
class EvaluationArguments:
    """Settings of `evaluate_model` / `hf-vision-zoo evaluate DIR`."""

    model_dir: str = _opt("A saved model folder (config.json, weights, preprocessor_config.json).", required=True,
                          positional=True)
    dataset: str = _opt("'fashion_mnist', an image folder or a Hub dataset name (online only).",
                        default="fashion_mnist")
    dataset_config: str | None = _opt("Hub dataset configuration name.")
    eval_split: str | None = _opt("Split to evaluate (default: validation/valid/val/test; else a held-out part of "
                                  "train, as in training).")
    validation_split: float = _opt("Held-out fraction of train when the data has no eval split (use the training "
                                   "run's value and --seed to get the same images).", default=0.1, type=float)
    seed: int = _opt("Seed of the held-out split (see --validation-split).", default=42, type=int)
    image_column: str | None = _opt("Image column of a Hub dataset.")
    label_column: str | None = _opt("Label column of a Hub dataset.")
    max_eval_samples: int | None = _opt("Evaluate only the first N images.", type=int)
    batch_size: int = _opt("Images per batch.", default=256, type=int)
    verify_images: bool = _opt("Skip corrupt image files of an image folder (with a warning).", default=True)
    num_threads: int | None = _opt("torch intra-op threads.", type=int)
    output_json: str | None = _opt("Also write the metrics to this JSON file.")


def parse_overrides(items: list[str] | dict | None) -> dict[str, Any]:
    """`["image_size=28", "depths=[2,2]"]` -> `{"image_size": 28, "depths": [2, 2]}` (JSON values, else strings)."""
    if not items:
        return {}
    if isinstance(items, dict):
        return dict(items)
    result = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"model override {item!r} is not KEY=VALUE (e.g. image_size=28)")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key:
            raise ValueError(f"model override {item!r} has an empty key")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def _base_type(tp) -> type:
    if isinstance(tp, str):
        tp = eval(tp, {"list": list, "dict": dict, "Any": Any})  # noqa: S307  (our own annotations only)
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is list:
        return list
    if args and get_origin(tp) is not list:
        return _base_type(args[0]) if len(args) == 1 else args[0]
    return tp


def build_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one option per dataclass field (help from the field's metadata)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        required = meta.pop("required", False)
        positional = meta.pop("positional", False)
        kind = _base_type(f.type)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if positional:
            parser.add_argument(f.name, help=help_text, **meta)
            continue
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
            continue
        kwargs = {"dest": f.name, "help": help_text, "required": required}
        if not required:
            kwargs["default"] = default
        if kind is list:
            kwargs.setdefault("nargs", "*")
        elif "type" not in meta and kind in (int, float):
            kwargs["type"] = kind
        kwargs.update(meta)
        parser.add_argument(flag, **kwargs)
    return parser


def parse_into(cls, argv: list[str] | None, prog: str | None = None, description: str | None = None):
    parser = build_parser(cls, prog=prog, description=description)
    namespace = parser.parse_args(argv)
    return cls(**vars(namespace))


__all__ = ["EvaluationArguments", "TrainingArguments", "build_parser", "parse_into", "parse_overrides"]
