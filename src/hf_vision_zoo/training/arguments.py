"""The training and evaluation settings (dataclasses) and their command lines (argparse, one `--option` per field,
each with its help text). `hf-vision-zoo train ...` and `examples/train_image_classification.py` use these."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from .adversarial import parse_pixel_value


def _opt(help: str, **extra) -> Any:  # noqa: A002
    default = extra.pop("default", None)
    factory = extra.pop("default_factory", None)
    metadata = {"help": help, **extra}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# Named presets of TrainingArguments (`--recipe NAME`; explicit options override them).
# Brain-Score CrossViT (Berrios & Deza, BSW 2022; github.com/williamberrios/BrainScore-Transformers, commit ef80b74,
# Fast-Adversarial-Training/Configs/crossvit-18-dagger-408-*/configs_fast_2px.yml and Code/train_adv.py): fine-tune
# ImageNet-pretrained crossvit_18_dagger_408 for 6 epochs, batch 64, seed 0, Adam (lr schedule custom_lr_scheduler_v1:
# 8e-5 -> 2e-4 over epoch 1, then halving per epoch), weight decay 1e-4, fp16 autocast, RandomResizedCrop + flip,
# no label smoothing / mixup / clipping; FAT: eps 2/255, FGSM step 2.5/255, random start every batch; ROTINV: 90/180
# degree rotations with p=0.5 each; GRAY: RandomGrayscale(0.25). Crops are 224 px (timm's CrossViT, like ours,
# bicubic-resizes them to 408/384 per branch); evaluation: resize 256, centre crop 224.
_BRAINSCORE_BASE = dict(
    optimizer="adam", learning_rate=2e-4, lr_schedule="halving", lr_start_factor=0.4, weight_decay=1e-4,
    epochs=6, batch_size=64, seed=0, label_smoothing=0.0, mixup=0.0, cutmix=0.0, max_grad_norm=0.0,
    rrc_scale=[0.08, 1.0], rrc_ratio=[3 / 4, 4 / 3], hflip=0.5, input_size=224, crop_pct=0.875,
    mixed_precision="bf16",
    adv_epsilon=2 / 255, adv_alpha=2.5 / 255,
)
RECIPES: dict[str, dict[str, Any]] = {
    # the paper's model: CrossViT-18 dagger + Rotation + Adv (ImageNet 73.53, Brain-Score 0.488, V4 0.514)
    "brainscore_crossvit18": {**_BRAINSCORE_BASE, "rotation_invariance": True, "adversarial": "fgsm"},
    # ablations of the same repository (README table)
    "brainscore_crossvit18_adv": {**_BRAINSCORE_BASE, "rotation_invariance": False, "adversarial": "fgsm"},
    "brainscore_crossvit18_rot": {**_BRAINSCORE_BASE, "rotation_invariance": True, "adversarial": "none"},
    "brainscore_crossvit18_rot_adv_gray": {**_BRAINSCORE_BASE, "rotation_invariance": True, "adversarial": "fgsm",
                                           "random_grayscale": 0.25},
}



@dataclass
class TrainingArguments:
    """Everything `train()` needs; every field is also a command-line option (`output_dir` -> `--output-dir`)."""

    recipe: str | None = _opt("A named preset of the settings below (see RECIPES in hf_vision_zoo.training.arguments; "
                              "e.g. brainscore_crossvit18 = the Brain-Score CrossViT-18 dagger recipe: rotation "
                              "invariance + fast FGSM adversarial training). Options given explicitly override it.",
                              choices=sorted(RECIPES))
    # what to train
    output_dir: str = _opt("Folder for the final model (config, safetensors weights, image processor, model card, "
                           "results). Written to a temporary sibling and renamed only when complete.",
                           required=True)
    model: str | None = _opt("Registry name to build a randomly initialised model from: a variant "
                             "(e.g. swin_tiny_patch4_window7_224.ms_in1k) or an architecture (e.g. swin). "
                             "See `hf-vision-zoo list`. Give this or --pretrained.")
    pretrained: str | None = _opt("A saved model folder (save_pretrained output) to fine-tune instead of --model; "
                                  "also a self-supervised pre-training folder (`hf-vision-zoo pretrain`): its "
                                  "encoder is loaded and a new classifier made for the dataset's classes.")
    model_overrides: list[str] = _opt("Config overrides KEY=VALUE (VALUE parsed as JSON when possible), e.g. "
                                      "image_size=28 patch_size=2 depths=[2,2] num_heads=[2,4] drop_path_rate=0.1.",
                                      default_factory=list, nargs="*", metavar="KEY=VALUE")
    linear_probe: bool = _opt("Linear probing: freeze everything but the classifier head (a new linear layer on the "
                              "pooled features) and keep the encoder in eval mode, e.g. to evaluate a "
                              "self-supervised checkpoint: --pretrained PRETRAIN_DIR --linear-probe.", default=False)
    ignore_mismatched_sizes: bool = _opt("With --pretrained: re-initialise the classifier when the checkpoint's "
                                         "num_labels differs from the dataset's classes (otherwise an error).",
                                         default=False)
    input_size: int | None = _opt("Side of the square images fed to the model, in training and in the saved image "
                                  "processor (default: the model's image_size; the largest branch size for "
                                  "CrossViT). Only for models that accept other sizes: CrossViT resizes the input "
                                  "per branch, so the Brain-Score recipe trains crossvit_18_dagger_408 on 224 px "
                                  "crops as the official code does.", type=int)
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
    rotation_invariance: bool = _opt("Brain-Score CrossViT rotation invariance: rotate by 90 degrees with probability "
                                     "--rotation-prob, then by 180 with the same probability (0/90/180/270 equally "
                                     "likely at 0.5), before the crop; training only.", default=False)
    rotation_prob: float = _opt("Probability of each of the two rotations of --rotation-invariance.", default=0.5,
                                type=float)
    random_grayscale: float = _opt("Probability of turning a training image grey (kept 3-channel; the recipe's GRAY "
                                   "variant uses 0.25).", default=0.0, type=float)
    mixup: float = _opt("Mixup alpha (0 = off).", default=0.0, type=float)
    cutmix: float = _opt("CutMix alpha (0 = off).", default=0.0, type=float)
    mix_prob: float = _opt("Probability of applying mixup/cutmix to a batch.", default=1.0, type=float)
    mix_switch_prob: float = _opt("With both mixup and cutmix on: probability of cutmix for a mixed batch.",
                                  default=0.5, type=float)
    label_smoothing: float = _opt("Label smoothing of the cross-entropy targets.", default=0.1, type=float)
    # adversarial training
    adversarial: str = _opt("'fgsm': fast adversarial training (Wong et al. 2020): every micro-batch is replaced by "
                            "its FGSM-with-random-start perturbation (L-inf, in pixel space, respecting the "
                            "processor's normalisation) before the update; 'none': standard training.",
                            default="none", choices=["none", "fgsm"])
    adv_epsilon: float = _opt("L-inf radius of the perturbation in [0, 1] pixel units (a number or a fraction such "
                              "as 2/255).", default=2 / 255, type=parse_pixel_value)
    adv_alpha: float | None = _opt("FGSM step size in pixel units (default 1.25 x --adv-epsilon, i.e. 2.5/255 for "
                                   "2/255).", type=parse_pixel_value)
    # optimisation
    optimizer: str = _opt("'adamw' (decoupled weight decay) or 'adam' (L2 weight decay added to the gradient, as "
                          "torch.optim.Adam).", default="adamw", choices=["adamw", "adam"])
    lr_schedule: str = _opt("'cosine': linear warm-up then cosine to --min-lr. 'halving': the Brain-Score recipe's "
                            "per-step schedule: over the first epoch linear from --lr-start-factor x --learning-rate "
                            "up to --learning-rate, then each epoch linearly halving it.", default="cosine",
                            choices=["cosine", "halving"])
    lr_start_factor: float = _opt("With --lr-schedule halving: the learning rate at step 0 as a fraction of "
                                  "--learning-rate.", default=0.4, type=float)
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
    pgd_steps: int = _opt("Also report robust top-1 under an L-inf PGD attack with this many steps (0 = clean "
                          "accuracy only).", default=0, type=int)
    adv_epsilon: float = _opt("PGD radius in [0, 1] pixel units (a number or a fraction such as 2/255).",
                              default=2 / 255, type=parse_pixel_value)
    adv_alpha: float | None = _opt("PGD step size in pixel units (default 2.5 x --adv-epsilon / --pgd-steps).",
                                   type=parse_pixel_value)
    pgd_restarts: int = _opt("PGD random restarts (an image counts as broken if any restart fools the model).",
                             default=1, type=int)


# ---------------------------------------------------------------------------------------------- pre-training
# `PreTrainingArguments` (examples/pretrain.py, `hf-vision-zoo pretrain`) reuses these TrainingArguments fields, with
# the help texts and defaults below where pre-training differs (MAE's recipe: crops of 20-100 % of the image, AdamW
# betas (0.9, 0.95), weight decay 0.05, cosine schedule with warm-up, no layer decay).
_PRETRAIN_SHARED = (
    "output_dir", "model", "model_overrides", "dataset", "dataset_config", "image_column", "label_column",
    "max_train_samples", "verify_images", "num_workers", "augment", "rrc_scale", "rrc_ratio", "hflip", "epochs",
    "max_steps", "batch_size", "learning_rate", "min_lr", "weight_decay", "adam_betas", "warmup_steps",
    "warmup_ratio", "layer_decay", "gradient_accumulation_steps", "max_grad_norm", "mixed_precision", "seed",
    "num_threads", "run_dir", "checkpoint_every", "checkpoint_each_epoch", "keep_checkpoints", "resume",
    "overwrite_output_dir", "log_every", "report_to", "progress", "model_card", "stop_after_steps", "rank_report",
)
_PRETRAIN_CHANGES: dict[str, dict[str, Any]] = {
    "output_dir": {"help": "Folder for the final pre-training checkpoint (config, safetensors weights of the whole "
                           "XForPreTraining model, image processor, model card, results). Its encoder loads with "
                           "AutoModel / AutoModelForImageClassification, e.g. `train --pretrained OUTPUT_DIR "
                           "--linear-probe`. Written to a temporary sibling and renamed only when complete."},
    "model": {"help": "Registry name of an architecture (or variant) that has a self-supervised pre-training model "
                      "(registry task 'pretraining', e.g. mae), built randomly initialised.", "required": True},
    "model_overrides": {"help": "Config overrides KEY=VALUE (VALUE parsed as JSON when possible), e.g. "
                                "image_size=28 patch_size=4 hidden_size=64 num_hidden_layers=4 "
                                "num_attention_heads=4 num_channels=1 mask_ratio=0.75."},
    "dataset": {"help": "'fashion_mnist', an image folder or a Hub dataset name; only the training images are "
                        "used (labels are ignored)."},
    "max_train_samples": {"help": "Pre-train on only the first N training images."},
    "rrc_scale": {"default": [0.2, 1.0]},
    "adam_betas": {"default": [0.9, 0.95]},
    "learning_rate": {"default": 1.5e-4, "help": "Peak AdamW learning rate (MAE: 1.5e-4 x global batch / 256)."},
    "log_every": {"help": "Update the progress bar (and TensorBoard) with the mean loss, loss terms and lr every N "
                          "optimizer steps."},
}


def _derived_dataclass(name: str, source, keep: tuple[str, ...], changes: dict[str, dict], doc: str, methods: dict):
    """A dataclass whose fields are `source`'s fields named in `keep` (same types, options and help), with
    `changes` (new `default` / `help` / other option metadata) applied."""
    by_name = {f.name: f for f in dataclasses.fields(source)}
    specs = []
    for key in keep:
        old = by_name[key]
        change = dict(changes.get(key, {}))
        metadata = {**old.metadata, **{k: v for k, v in change.items() if k != "default"}}
        if "default" in change:
            value = change["default"]
            new = (field(default_factory=lambda v=value: list(v), metadata=metadata) if isinstance(value, list)
                   else field(default=value, metadata=metadata))
        elif old.default_factory is not dataclasses.MISSING:
            new = field(default_factory=old.default_factory, metadata=metadata)
        else:
            new = field(default=old.default, metadata=metadata)
        specs.append((key, old.type, new))
    cls = dataclasses.make_dataclass(name, specs, namespace={**methods, "__doc__": doc})
    cls.__module__ = __name__
    return cls


PreTrainingArguments = _derived_dataclass(
    "PreTrainingArguments", TrainingArguments, _PRETRAIN_SHARED, _PRETRAIN_CHANGES,
    "Everything `pretrain()` needs (a subset of TrainingArguments' fields; every field is a command-line option).",
    {"overrides": TrainingArguments.overrides})


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings of a named recipe (a copy); unknown names are a clear error."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in RECIPES[name].items()}


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
    if any(f.name == "recipe" for f in dataclasses.fields(cls)):
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--recipe", choices=sorted(RECIPES))
        known, _ = pre.parse_known_args(argv)
        if known.recipe:  # the recipe's values become the defaults; explicit options still win
            parser.set_defaults(**recipe_settings(known.recipe))
    namespace = parser.parse_args(argv)
    return cls(**vars(namespace))


def training_arguments_from_recipe(recipe: str, **changes) -> TrainingArguments:
    """`TrainingArguments` with a named recipe's settings, then `changes` (which win)."""
    return TrainingArguments(**{**recipe_settings(recipe), "recipe": recipe, **changes})


__all__ = ["EvaluationArguments", "PreTrainingArguments", "RECIPES", "TrainingArguments", "build_parser", "parse_into", "parse_overrides",
           "recipe_settings", "training_arguments_from_recipe"]
