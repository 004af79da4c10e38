"""Model cards, checkpoint checks, Hub publishing and the `model_cards/` index.

* `build_model_card` / `write_model_card`: a huggingface_hub `ModelCard` built from a saved checkpoint folder and what
  the run measured: metadata (library, pipeline tag, tags incl. the arXiv id, datasets, licence, model-index results),
  the architecture, variant and preprocessing, the training set-up, the results, three lines of usage and the paper's
  BibTeX.
* `check_checkpoint_folder`: what a publishable checkpoint is: `config.json` that `AutoConfig` loads (after
  `import hf_vision_zoo`), safetensors weights that fit it (`model.safetensors` or a sharded index),
  `preprocessor_config.json` and a `README.md` card. Pickled weights (`.bin`, `.pt`, ...) are refused.
* `publish`: `HfApi.create_repo(exist_ok=True)` + `upload_folder` of a checked folder; returns the commit URL.
* `update_index`: one entry per released checkpoint in `model_cards/index.yaml` (mmpretrain metafile style) and a
  copy of its card as `model_cards/<name>.md`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import registry

ZOO_TAG = "hf_vision_zoo"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
REQUIRED_FILES = ("config.json", "preprocessor_config.json", "README.md")

# BibTeX of each architecture's paper, keyed by registry architecture name (registry.py keeps paper title and URL).
CITATIONS: dict[str, str] = {
    "swin": """@inproceedings{liu2021swin,
  title     = {Swin Transformer: Hierarchical Vision Transformer using Shifted Windows},
  author    = {Liu, Ze and Lin, Yutong and Cao, Yue and Hu, Han and Wei, Yixuan and Zhang, Zheng and Lin, Stephen
               and Guo, Baining},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {10012--10022},
  year      = {2021}
}""",
}

# metric key (after dropping an eval_/test_ prefix) -> (model-index metric type, human-readable name)
_METRIC_NAMES = {
    "accuracy": ("accuracy", "Top-1 accuracy"), "top1": ("accuracy", "Top-1 accuracy"),
    "top_1": ("accuracy", "Top-1 accuracy"), "acc1": ("accuracy", "Top-1 accuracy"),
    "top1_accuracy": ("accuracy", "Top-1 accuracy"), "accuracy_top1": ("accuracy", "Top-1 accuracy"),
    "top5": ("top_5_accuracy", "Top-5 accuracy"), "top_5": ("top_5_accuracy", "Top-5 accuracy"),
    "acc5": ("top_5_accuracy", "Top-5 accuracy"), "top5_accuracy": ("top_5_accuracy", "Top-5 accuracy"),
    "accuracy_top5": ("top_5_accuracy", "Top-5 accuracy"),
    "loss": ("loss", "Loss"), "f1": ("f1", "F1"), "macro_f1": ("f1", "Macro F1"),
    "mean_per_class_accuracy": ("mean_per_class_accuracy", "Mean per-class accuracy"),
}
_USAGE_RE = re.compile(r'(pipeline\("image-classification", model=")([^"]*)("\))')
_INDEX_HEADER = """\
# hf_vision_zoo: the checkpoints we release, one entry per checkpoint (mmpretrain metafile style).
#
# Do not edit by hand: add or update an entry from a finished checkpoint folder (config.json, model.safetensors,
# preprocessor_config.json, README.md card) with
#     hf-vision-zoo index DIR --name NAME [--repo-id ORG/NAME]      (or hf_vision_zoo.hub.update_index(DIR, NAME))
# which also copies the folder's card to model_cards/NAME.md.
# Fields: name, architecture, variant (registry name or null), dataset, metrics (from the card's model-index),
# params, input_size [h, w], num_labels, paper {title, url}, code (official repo), license, card (file in this
# folder), weights (Hub repo id once published, else null).
"""


class CheckpointError(ValueError):
    """A folder that is not a complete, publishable zoo checkpoint. `problems` lists every issue found."""

    def __init__(self, path, problems: list[str]):
        self.path = Path(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path} is not a complete checkpoint:\n{lines}")


@dataclass
class CheckpointFolder:
    """What `check_checkpoint_folder` found in a complete checkpoint."""

    path: Path
    config: Any
    weight_files: list[str]
    architecture: str | None
    files: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------- helpers
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} has no {path.name} ({what})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({what}): {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object ({what})")
    return data


def architecture_for_model_type(model_type: str | None) -> registry.Architecture:
    """The registry architecture whose config has `model_type` (e.g. "zoo_swin" -> swin)."""
    for name in registry.list_architectures():
        arch = registry.get_architecture(name)
        if arch.config_class.model_type == model_type:
            return arch
    known = ", ".join(registry.get_architecture(n).config_class.model_type for n in registry.list_architectures())
    raise ValueError(f"config.json has model_type {model_type!r}, which is not a hf_vision_zoo architecture "
                     f"(known: {known})")


def _weight_files(folder: Path) -> list[str]:
    if (folder / "model.safetensors").is_file():
        return ["model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = _read_json(index, "sharded safetensors index")
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{index} has no weight_map")
        return sorted(set(weight_map.values()))
    return []


def _safetensors_shapes(folder: Path, files: list[str]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers (no tensor data is read)."""
    from safetensors import safe_open

    shapes = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def _meta_model(config):
    """The config's model class (from `config.architectures`) built on the meta device: shapes without memory."""
    import torch

    arch = architecture_for_model_type(config.model_type)
    wanted = (getattr(config, "architectures", None) or [""])[0]
    classes = {cls.__name__: cls for cls in arch.model_classes.values()}
    model_class = classes.get(wanted, arch.model_classes.get("image-classification"))
    with torch.device("meta"):
        return model_class(config)


def count_parameters(model_dir) -> int:
    """Number of parameters of the checkpoint in `model_dir` (from its config; no weights are loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    return sum(p.numel() for p in _meta_model(config).parameters())


def _format_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def _input_size(pre: dict) -> tuple[int, int] | None:
    size = pre.get("crop_size") if pre.get("do_center_crop") else pre.get("size")
    if not isinstance(size, dict):
        return None
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if "shortest_edge" in size:
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    return None


def describe_preprocessing(pre: dict) -> list[tuple[str, str]]:
    """Human-readable steps of a `preprocessor_config.json` (what the pipeline does to an image)."""
    from transformers.image_utils import PILImageResampling

    rows = [("processor", f"{pre.get('image_processor_type', '?')} (torchvision and PIL backends)")]
    if pre.get("do_convert_rgb", True):
        rows.append(("colour", "converted to RGB (grayscale, RGBA, CMYK accepted)"))
    if pre.get("do_resize", True) and isinstance(pre.get("size"), dict):
        size = pre["size"]
        try:
            resample = PILImageResampling(pre.get("resample", 3)).name.lower()
        except ValueError:
            resample = str(pre.get("resample"))
        if "shortest_edge" in size:
            what = f"shortest edge to {size['shortest_edge']} px"
        else:
            what = f"{size.get('height')}x{size.get('width')} px"
        rows.append(("resize", f"{what} ({resample})"))
    if pre.get("do_center_crop") and isinstance(pre.get("crop_size"), dict):
        crop = pre["crop_size"]
        rows.append(("centre crop", f"{crop.get('height')}x{crop.get('width')} px"))
    if pre.get("do_rescale", True):
        factor = pre.get("rescale_factor", 1 / 255)
        rows.append(("rescale", "1/255" if math.isclose(factor, 1 / 255) else f"{factor:g}"))
    if pre.get("do_normalize", True):
        mean = ", ".join(f"{v:.3f}" for v in pre.get("image_mean", []))
        std = ", ".join(f"{v:.3f}" for v in pre.get("image_std", []))
        rows.append(("normalise", f"mean ({mean}), std ({std})"))
    size = _input_size(pre)
    if size:
        rows.append(("model input", f"{size[0]}x{size[1]} px"))
    return rows


def _md(value: Any) -> str:
    """A value as one Markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _metric_entries(metrics: dict) -> tuple[list[tuple[str, str, str, float]], dict[str, dict[str, float]]]:
    """Scalar metrics as (key, model-index type, display name, value), and per-class metrics ({label: number}
    values, e.g. per-class accuracy) as {key: {label: value}}. Anything else is rejected."""
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("metrics must be a non-empty dict of metric name -> number, e.g. {'top1': 0.91}")
    scalars, per_class = [], {}
    for key, value in metrics.items():
        if isinstance(value, dict) and value and all(_is_number(v) for v in value.values()):
            per_class[str(key)] = {str(k): float(v) for k, v in value.items()}
            continue
        if not _is_number(value):
            raise ValueError(f"metric {key!r} must be a finite number (or a {{class: number}} dict), got {value!r}")
        bare = re.sub(r"^(eval|test|val|validation)_", "", str(key).lower())
        mtype, name = _METRIC_NAMES.get(bare, (bare, str(key)))
        scalars.append((str(key), mtype, name, float(value)))
    if not scalars:
        raise ValueError("metrics need at least one scalar number (e.g. top1) for the model-index results")
    return scalars, per_class


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and not Path(name).exists()


def _citation(arch: registry.Architecture) -> str:
    if arch.name in CITATIONS:
        return CITATIONS[arch.name]
    key = re.sub(r"\W", "", arch.name)
    return f"@misc{{{key},\n  title = {{{arch.paper}}},\n  url   = {{{arch.paper_url}}}\n}}"


def _arxiv_id(url: str) -> str | None:
    match = re.search(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})", url)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------------------------- model cards
CARD_TASKS = ("image-classification", "pretraining")


def build_model_card(model_dir, *, dataset_name: str, metrics: dict[str, float], training_args: dict,
                     variant: str | None = None, model_id: str | None = None,
                     task: str = "image-classification") -> ModelCard:
    """The model card of the checkpoint saved in `model_dir` (config.json and preprocessor_config.json are read).

    dataset_name: the data the model was trained/evaluated on (a Hub dataset id such as "fashion_mnist" goes into the
        `datasets` metadata; a local folder is named in the text only).
    metrics: what the run measured, e.g. {"top1": 0.912, "top5": 0.998}; numbers become the model-index results,
        {class: number} dicts (e.g. per-class accuracy) extra tables in the body.
    training_args: the run's settings (epochs, batch size, lr, ...), shown as the training set-up table.
    variant: the registry variant the model was built from, if any.
    model_id: the id shown in the usage snippet (default: the folder's name; `publish` points it at the repo).
    task: "image-classification" (a classifier: pipeline tag, model-index results and a `pipeline` snippet) or
        "pretraining" (a self-supervised checkpoint: feature-extraction pipeline tag and tags, the metrics are its
        final training losses, shown in the body only, and the snippet loads the encoder with `AutoModel`).
    """
    if task not in CARD_TASKS:
        raise ValueError(f"task must be one of {CARD_TASKS}, got {task!r}")
    pretraining = task == "pretraining"
    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json", "the model config")
    pre = _read_json(model_dir / "preprocessor_config.json", "the image processor config")
    arch = architecture_for_model_type(config.get("model_type"))
    if variant is not None:
        var = registry.get_variant(variant)
        if var.architecture != arch.name:
            raise ValueError(f"variant {variant!r} is a {var.architecture} model, but {model_dir} holds a "
                             f"{arch.name} checkpoint ({config.get('model_type')})")
    else:
        var = None
    if not isinstance(dataset_name, str) or not dataset_name.strip():
        raise ValueError("dataset_name must be a non-empty string")
    if not isinstance(training_args, dict):
        raise ValueError(f"training_args must be a dict, got {type(training_args).__name__}")
    entries, per_class = _metric_entries(metrics)
    model_name = model_id or model_dir.resolve().name
    hub_dataset = _looks_like_hub_id(dataset_name)
    dataset_label = dataset_name if hub_dataset else Path(dataset_name).name or dataset_name
    split = training_args.get("eval_split") or training_args.get("validation_split")

    from transformers import AutoConfig

    params = sum(p.numel() for p in _meta_model(AutoConfig.from_pretrained(str(model_dir))).parameters())
    input_size = _input_size(pre)
    arxiv = _arxiv_id(arch.paper_url)
    tags = ([ZOO_TAG, "self-supervised", "masked-image-modeling", "image-feature-extraction"] if pretraining
            else [ZOO_TAG, "image-classification"]) + ["vision", arch.name] + ([f"arxiv:{arxiv}"] if arxiv else [])
    base_model = training_args.get("base_model")
    eval_results = [
        EvalResult(task_type="image-classification", task_name="Image Classification",
                   dataset_type=dataset_name if hub_dataset else "imagefolder", dataset_name=dataset_label,
                   dataset_split=split if isinstance(split, str) else None,
                   metric_type=mtype, metric_name=name, metric_value=value)
        for _, mtype, name, value in entries
    ] if not pretraining else None  # training losses are not evaluation results
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-feature-extraction" if pretraining else "image-classification",
        license=arch.license,
        tags=tags,
        datasets=[dataset_name] if hub_dataset else None,
        metrics=None if pretraining else sorted({mtype for _, mtype, _, _ in entries}),
        base_model=base_model if isinstance(base_model, str) and _looks_like_hub_id(base_model) else None,
        model_name=model_name,
        eval_results=eval_results,
        zoo={"architecture": arch.name, "variant": variant, "model_type": config.get("model_type"),
             "dataset": dataset_name, "metrics": {key: value for key, _, _, value in entries}, "params": params,
             "input_size": list(input_size) if input_size else None, "paper": arch.paper_url,
             "code": arch.official_repo},
    )

    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=lambda k: int(k))] if id2label else []
    shown = ", ".join(f"`{lab}`" for lab in labels[:20]) + (f" (+{len(labels) - 20} more)" if len(labels) > 20 else "")
    hyper = {k: config[k] for k in ("image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size",
                                    "mlp_ratio", "hidden_size", "num_hidden_layers", "drop_path_rate")
             if k in config}
    variant_text = (f"`{var.name}` (published on {var.dataset}"
                    + (f", top-1 {var.top1:.1f}%" if var.top1 else "") + ")") if var else "custom configuration"
    class_name = _md((config.get("architectures") or ["?"])[0])
    method = arch.display_name or arch.name
    intro = (f"A {method} self-supervised **pre-training checkpoint** (`{class_name}`: encoder plus pre-training "
             f"heads) trained on the images of **{dataset_label}** with `hf_vision_zoo` (labels not used). It is not "
             f"a classifier: fine-tune or linearly probe its encoder (`hf-vision-zoo train --pretrained "
             f"{model_name} [--linear-probe] ...`), or load the encoder with `AutoModel`." if pretraining else
             f"A {arch.paper.split(':')[0]} (`{arch.name}`) image classifier trained on **{dataset_label}** with "
             "`hf_vision_zoo`: a plain transformers model (safetensors weights) that loads with "
             "`AutoModelForImageClassification` and `pipeline` once `hf_vision_zoo` is imported.")
    usage = ([
        "```python",
        "import hf_vision_zoo  # registers the zoo's architectures with transformers",
        "from transformers import AutoModel, AutoModelForPreTraining",
        f'encoder = AutoModel.from_pretrained("{model_name}")  # the pre-trained encoder (pre-training heads dropped)',
        f'model = AutoModelForPreTraining.from_pretrained("{model_name}")  # the whole pre-training model',
        "```",
        "",
        "Fine-tuning: `hf-vision-zoo train --pretrained MODEL_DIR --dataset ...`; linear probe: add "
        "`--linear-probe`.",
    ] if pretraining else [
        "```python",
        "import hf_vision_zoo  # registers the zoo's architectures with transformers",
        "from transformers import pipeline",
        f'classifier = pipeline("image-classification", model="{model_name}")',
        'print(classifier("image.jpg"))',
        "```",
        "",
        "Or from the command line: `hf-vision-zoo predict MODEL_DIR image.jpg`.",
    ])
    lines = [
        f"# {model_name}",
        "",
        intro,
        "",
        "## Model details",
        "",
        "| | |",
        "|---|---|",
        f"| Architecture | `{arch.name}` (`{config.get('model_type')}`, `{class_name}`) |",
        f"| Paper | [{arch.paper}]({arch.paper_url}) |",
        f"| Official code | {arch.official_repo} |",
        f"| Variant | {variant_text} |",
        f"| Parameters | {_format_params(params)} ({params:,}) |",
        f"| Input size | {f'{input_size[0]}x{input_size[1]}' if input_size else '?'} |",
        f"| Classes | {len(labels)}{': ' + shown if labels else ''} |",
        f"| Licence | {arch.license} |",
        f"| Hyper-parameters | {_md(hyper)} |",
        "",
        "## Preprocessing",
        "",
        "| step | setting |",
        "|---|---|",
        *[f"| {step} | {_md(setting)} |" for step, setting in describe_preprocessing(pre)],
        "",
        "## Training set-up",
        "",
        f"Dataset: **{dataset_label}**" + (f" (`{dataset_name}`)" if dataset_label != dataset_name else "") + ".",
        "",
        "| setting | value |",
        "|---|---|",
        *([f"| {_md(k)} | {_md(v)} |" for k, v in training_args.items()] or ["| (not recorded) | |"]),
        "",
        "## Final training losses" if pretraining else "## Results",
        "",
        "| metric | value | dataset |",
        "|---|---|---|",
        *[f"| {name} (`{key}`) | {value:.4f} | {dataset_label}{f' ({split})' if isinstance(split, str) else ''} |"
          for key, _, name, value in entries],
        "",
        *[line for key, table in per_class.items() for line in (
            f"Per class (`{key}`):", "", "| class | value |", "|---|---|",
            *[f"| {_md(label)} | {value:.4f} |" for label, value in table.items()], "")],
        "## How to use",
        "",
        *usage,
        "",
        "## Citation",
        "",
        "```bibtex",
        _citation(arch),
        "```",
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


def write_model_card(model_dir, *, dataset_name, metrics, training_args, variant=None) -> Path:
    """Build the card (see `build_model_card`) and write it to `model_dir/README.md`; returns that path."""
    card = build_model_card(model_dir, dataset_name=dataset_name, metrics=metrics, training_args=training_args,
                            variant=variant)
    path = Path(model_dir) / "README.md"
    _write_atomically(path, str(card))
    return path


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------- checkpoint checking
def check_checkpoint_folder(path) -> CheckpointFolder:
    """Check that `path` is a complete checkpoint; raise `CheckpointError` listing everything missing or wrong.

    Complete: config.json that AutoConfig loads (after `import hf_vision_zoo`), safetensors weights
    (`model.safetensors` or `model.safetensors.index.json` + its shards) whose tensors fit the config,
    preprocessor_config.json that AutoImageProcessor loads, and a README.md model card with YAML metadata.
    No pickle files (.bin/.pt/.pth/.pkl/.ckpt) anywhere in the folder: we publish safetensors only.
    """
    from transformers import AutoConfig, AutoImageProcessor

    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"Checkpoint folder {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointError(folder, [f"{folder} is a file, not a checkpoint folder"])
    problems: list[str] = []
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))

    pickles = [f for f in files if f.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        problems.append(f"pickle weight/state files are not published (safetensors only): {', '.join(pickles)}; "
                        "remove them (e.g. training checkpoints) or save the model with safe_serialization")

    config = None
    if not (folder / "config.json").is_file():
        problems.append("missing config.json (the model config; model.save_pretrained writes it)")
    else:
        try:
            config = AutoConfig.from_pretrained(str(folder))
        except Exception as err:  # noqa: BLE001 - any failure is reported, not raised
            problems.append(f"config.json does not load with AutoConfig (after import hf_vision_zoo): {err}")

    weights: list[str] = []
    try:
        weights = _weight_files(folder)
    except ValueError as err:
        problems.append(str(err))
    if not weights and not any("model.safetensors" in p for p in problems):
        problems.append("missing model.safetensors (or model.safetensors.index.json with its shards)")
    missing_shards = [w for w in weights if not (folder / w).is_file()]
    if missing_shards:
        problems.append(f"missing weight shards listed in model.safetensors.index.json: {', '.join(missing_shards)}")
    elif weights:
        try:
            shapes = _safetensors_shapes(folder, weights)
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error type on a bad header
            problems.append(f"weights are not readable safetensors (truncated or corrupt?): {err}")
        else:
            if config is not None:
                problems.extend(_weights_fit_config(shapes, config))

    if not (folder / "preprocessor_config.json").is_file():
        problems.append("missing preprocessor_config.json (the image processor; image_processor.save_pretrained "
                        "writes it)")
    else:
        try:
            AutoImageProcessor.from_pretrained(str(folder))
        except Exception as err:  # noqa: BLE001
            problems.append(f"preprocessor_config.json does not load with AutoImageProcessor: {err}")

    readme = folder / "README.md"
    if not readme.is_file():
        problems.append("missing README.md model card (write it with hf_vision_zoo.hub.write_model_card or "
                        "`hf-vision-zoo card`)")
    else:
        try:
            card = ModelCard.load(readme)
            if not card.data.to_dict():
                problems.append("README.md has no YAML metadata block (not a model card)")
        except Exception as err:  # noqa: BLE001
            problems.append(f"README.md is not a valid model card: {err}")

    if problems:
        raise CheckpointError(folder, problems)
    arch = None
    try:
        arch = architecture_for_model_type(config.model_type).name
    except ValueError:
        pass
    return CheckpointFolder(path=folder, config=config, weight_files=weights, architecture=arch, files=files)


def _weights_fit_config(shapes: dict[str, tuple[int, ...]], config) -> list[str]:
    try:
        model = _meta_model(config)
    except ValueError:
        return []  # not a zoo architecture: transformers' own checks apply when it is loaded
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    missing = sorted(k for k in expected if k not in shapes and k not in tied)
    unexpected = sorted(k for k in shapes if k not in expected)
    mismatched = [f"{k} {shapes[k]} vs {expected[k]}" for k in expected if k in shapes and shapes[k] != expected[k]]

    def show(items):
        return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

    problems = []
    if missing:
        problems.append(f"weights lack {len(missing)} tensors of the model in config.json: {show(missing)}")
    if unexpected:
        problems.append(f"weights have {len(unexpected)} tensors the model does not: {show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} weight shapes do not fit config.json: {show(mismatched)}")
    return problems


# -------------------------------------------------------------------------------------------------------- publishing
def publish(folder, repo_id, *, private=False, revision=None, token=None, commit_message=None, api=None) -> str:
    """Upload a complete checkpoint folder to the Hub repo `repo_id` ("org/name"); returns the commit URL.

    The folder is checked first (`check_checkpoint_folder`); nothing is sent for an incomplete one. The repo is
    created if needed (`exist_ok`), `revision` (a branch) too. The card's usage snippet is pointed at `repo_id`
    (README.md is updated in the folder) before `upload_folder` sends everything except hidden files.
    `api`: an `HfApi` to use (default: `HfApi(token=token)`, i.e. `HF_ENDPOINT` / `HF_TOKEN`).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import validate_repo_id

    folder = Path(folder)
    checked = check_checkpoint_folder(folder)
    if not isinstance(repo_id, str) or "/" not in repo_id:
        raise ValueError(f"repo_id must look like ORG/NAME, got {repo_id!r}")
    validate_repo_id(repo_id)
    api = api if api is not None else HfApi(token=token)
    # private=False leaves the visibility to the Hub (the organisation's default), as `push_to_hub` does
    api.create_repo(repo_id, private=True if private else None, exist_ok=True, token=token)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True, token=token)
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    pointed = _USAGE_RE.sub(lambda m: m.group(1) + repo_id + m.group(3), text)
    if pointed != text:
        _write_atomically(readme, pointed)
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), revision=revision, token=token,
        commit_message=commit_message or f"Upload {checked.architecture or 'model'} checkpoint with hf_vision_zoo",
        ignore_patterns=[".*", "**/.*", "*/.*"],
    )
    return str(info.commit_url)


# ------------------------------------------------------------------------------------------------------------ index
def default_model_cards_dir() -> Path:
    """The repository's `model_cards/` (editable install), else `./model_cards`."""
    repo_dir = Path(__file__).resolve().parents[2] / "model_cards"
    return repo_dir if repo_dir.is_dir() else Path.cwd() / "model_cards"


def read_index(index_path) -> list[dict]:
    import yaml

    index_path = Path(index_path)
    if not index_path.is_file():
        return []
    try:
        data = yaml.safe_load(index_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{index_path} is not valid YAML: {err}") from err
    models = data.get("models") if isinstance(data, dict) else None
    if models is None:
        models = []
    if not isinstance(models, list):
        raise ValueError(f"{index_path}: 'models' should be a list")
    return models


def write_index(index_path, entries: list[dict]) -> Path:
    import yaml

    index_path = Path(index_path)
    body = yaml.safe_dump({"models": entries}, sort_keys=False, allow_unicode=True, width=120)
    _write_atomically(index_path, _INDEX_HEADER + body)
    return index_path


def index_entry(model_dir, name: str, *, repo_id: str | None = None) -> dict:
    """The index entry of a complete checkpoint folder (read from its config, processor config and card)."""
    model_dir = Path(model_dir)
    checked = check_checkpoint_folder(model_dir)
    arch = architecture_for_model_type(checked.config.model_type)
    card = ModelCard.load(model_dir / "README.md")
    data = card.data.to_dict()
    zoo = data.get("zoo") or {}
    metrics, dataset = dict(zoo.get("metrics") or {}), zoo.get("dataset")
    for result in card.data.eval_results or []:  # cards written by other tools: the model-index results
        if not zoo.get("metrics"):
            metrics[result.metric_type] = result.metric_value
        dataset = dataset or result.dataset_type
    pre = _read_json(model_dir / "preprocessor_config.json", "the image processor config")
    size = _input_size(pre)
    return {
        "name": name,
        "architecture": arch.name,
        "variant": zoo.get("variant"),
        "dataset": dataset,
        "metrics": metrics,
        "params": int(zoo.get("params") or count_parameters(model_dir)),
        "input_size": list(size) if size else None,
        "num_labels": int(checked.config.num_labels),
        "paper": {"title": arch.paper, "url": arch.paper_url},
        "code": arch.official_repo,
        "license": arch.license,
        "card": f"{name}.md",
        "weights": repo_id,
    }


def update_index(model_dir, name: str, *, model_cards_dir=None, repo_id: str | None = None) -> dict:
    """Add (or replace) the entry `name` in `model_cards/index.yaml` from a complete checkpoint folder, and copy
    its card to `model_cards/<name>.md`. Returns the entry."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"index name must be letters, digits, '.', '_' or '-' (no slashes), got {name!r}")
    cards_dir = Path(model_cards_dir) if model_cards_dir is not None else default_model_cards_dir()
    index_path = cards_dir / "index.yaml"
    entries = read_index(index_path)
    entry = index_entry(model_dir, name, repo_id=repo_id)
    if repo_id is None:  # keep the published location of a re-indexed checkpoint
        entry["weights"] = next((e.get("weights") for e in entries if e.get("name") == name), None)
    _write_atomically(cards_dir / f"{name}.md", (Path(model_dir) / "README.md").read_text(encoding="utf-8"))
    replaced = False
    for i, old in enumerate(entries):
        if old.get("name") == name:
            entries[i], replaced = entry, True
    if not replaced:
        entries.append(entry)
    write_index(index_path, entries)
    return entry


__all__ = ["CARD_TASKS", "CITATIONS", "CheckpointError", "CheckpointFolder", "build_model_card", "check_checkpoint_folder",
           "count_parameters", "describe_preprocessing", "index_entry", "publish", "read_index", "update_index",
           "write_index", "write_model_card"]
