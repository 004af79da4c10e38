"""The zoo index: every architecture and every published variant, with its paper, code, licence and preprocessing.

`list_models`, `get_config`, `create_model` and `create_image_processor` are the public entry points; importing
`hf_vision_zoo` also registers every architecture with transformers' Auto classes (`register_with_transformers`).
"""

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any

TASKS = ("feature-extraction", "image-classification", "backbone", "pretraining")
# "pretraining": a self-supervised `XForPreTraining` whose forward returns `.loss` (see examples/pretrain.py)


@dataclass(frozen=True)
class Architecture:
    """One modeling file: its config, model classes per task, both image-processor backends and provenance."""

    name: str
    config_class: type
    model_classes: dict[str, type]
    image_processor_classes: dict[str, type]
    paper: str
    paper_url: str
    official_repo: str
    license: str
    tiny_config: dict[str, Any] = field(default_factory=dict)  # small, fast settings for the common tests
    display_name: str = ""  # short name for tables, e.g. "Swin Transformer"


@dataclass(frozen=True)
class Variant:
    """A published configuration of an architecture (timm-style `arch.tag` name)."""

    name: str
    architecture: str
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    dataset: str
    top1: float | None = None
    checkpoint: str | None = None  # where the official weights were released
    notes: str = ""


_ARCHITECTURES: dict[str, Architecture] = {}
_VARIANTS: dict[str, Variant] = {}


def register_architecture(arch: Architecture) -> Architecture:
    if arch.name in _ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    unknown = set(arch.model_classes) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)} for {arch.name!r}; known: {TASKS}")
    _ARCHITECTURES[arch.name] = arch
    return arch


def register_variant(variant: Variant) -> Variant:
    if variant.architecture not in _ARCHITECTURES:
        raise ValueError(f"variant {variant.name!r} names unknown architecture {variant.architecture!r}")
    if variant.name in _VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _VARIANTS[variant.name] = variant
    return variant


def _unknown(kind: str, name: str, known) -> KeyError:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Known {kind}s: hf_vision_zoo.list_models()."
    return KeyError(f"Unknown {kind} {name!r}.{hint}")


def list_architectures() -> list[str]:
    return sorted(_ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    if name not in _ARCHITECTURES:
        raise _unknown("architecture", name, _ARCHITECTURES)
    return _ARCHITECTURES[name]


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered variants, optionally filtered by a shell-style pattern (`"swin_base*"`)."""
    names = sorted(_VARIANTS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_variant(name: str) -> Variant:
    if name not in _VARIANTS:
        raise _unknown("model", name, _VARIANTS)
    return _VARIANTS[name]


def get_config(name: str, **overrides):
    """The config of a variant (or, given an architecture name, its default config) with `overrides` applied."""
    if name in _VARIANTS:
        variant = _VARIANTS[name]
        arch = _ARCHITECTURES[variant.architecture]
        kwargs = {**variant.config, **overrides}
    elif name in _ARCHITECTURES:
        arch, kwargs = _ARCHITECTURES[name], dict(overrides)
    else:
        raise _unknown("model", name, list(_VARIANTS) + list(_ARCHITECTURES))
    fields = set(arch.config_class.__dataclass_fields__) | {
        "num_labels", "id2label", "label2id", "out_features", "out_indices"}
    bad = sorted(k for k in kwargs if k not in fields and not hasattr(arch.config_class, k))
    if bad:
        raise TypeError(f"{arch.config_class.__name__} has no field(s) {bad}")
    return arch.config_class(**kwargs)


def create_model(name: str, task: str = "image-classification", **overrides):
    """A randomly initialised model of a variant for `task` (`feature-extraction`, `image-classification` or
    `backbone`). Weights come from `from_pretrained` or the converters in `hf_vision_zoo.conversion`."""
    config = get_config(name, **overrides)
    arch = _architecture_of(name)
    if task not in arch.model_classes:
        raise ValueError(f"{arch.name} supports tasks {sorted(arch.model_classes)}, not {task!r}")
    return arch.model_classes[task](config)


def create_image_processor(name: str, backend: str = "torchvision", **overrides):
    """The image processor with the variant's preprocessing, on the `torchvision` or `pil` backend."""
    arch = _architecture_of(name)
    if backend not in arch.image_processor_classes:
        raise ValueError(f"backend must be one of {sorted(arch.image_processor_classes)}, got {backend!r}")
    settings = dict(_VARIANTS[name].preprocessing) if name in _VARIANTS else {}
    return arch.image_processor_classes[backend](**{**settings, **overrides})


def load_backbone(pretrained_model_name_or_path, **kwargs):
    """`AutoBackbone.from_pretrained` that also works for local folders.

    transformers 5.23's `AutoBackbone.from_pretrained` asks the Hub whether the path is a repo before anything else,
    so a saved folder fails (absolute path: HFValidationError; relative or offline: a connection error). This
    resolves the backbone class through the same Auto mapping and loads the folder (or a Hub id) with it.
    Example: `load_backbone("swin-tiny", out_features=["stage1", "stage2", "stage3", "stage4"])`.
    """
    from transformers import AutoBackbone, AutoConfig

    config_kwargs = {k: kwargs.pop(k) for k in ("out_features", "out_indices") if k in kwargs}
    config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **config_kwargs)
    mapping = AutoBackbone._model_mapping
    if type(config) not in mapping:
        raise ValueError(f"{type(config).__name__} ({config.model_type}) has no backbone class")
    return mapping[type(config)].from_pretrained(pretrained_model_name_or_path, config=config, **kwargs)


def _architecture_of(name: str) -> Architecture:
    if name in _VARIANTS:
        return _ARCHITECTURES[_VARIANTS[name].architecture]
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name]
    raise _unknown("model", name, list(_VARIANTS) + list(_ARCHITECTURES))


def register_with_transformers() -> None:
    """Register every architecture with AutoConfig, AutoModel*, AutoBackbone and AutoImageProcessor."""
    from transformers import (
        AutoBackbone,
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForPreTraining,
    )

    auto_for_task = {"feature-extraction": AutoModel, "image-classification": AutoModelForImageClassification,
                     "backbone": AutoBackbone, "pretraining": AutoModelForPreTraining}
    for arch in _ARCHITECTURES.values():
        AutoConfig.register(arch.config_class.model_type, arch.config_class, exist_ok=True)
        for task, model_class in arch.model_classes.items():
            auto_for_task[task].register(arch.config_class, model_class, exist_ok=True)
        AutoImageProcessor.register(arch.config_class, image_processor_classes=arch.image_processor_classes,
                                    exist_ok=True)


def model_table() -> str:
    """A Markdown table of every variant (the README's model list is generated from it)."""
    rows = ["| model | paper | dataset | top-1 | params | input | licence |", "|---|---|---|---|---|---|---|"]
    for name in list_models():
        variant = _VARIANTS[name]
        arch = _ARCHITECTURES[variant.architecture]
        size = variant.preprocessing.get("crop_size") or variant.preprocessing.get("size", {})
        side = size.get("height", size.get("shortest_edge", ""))
        top1 = f"{variant.top1:.1f}" if variant.top1 else "-"
        params = _count_parameters(name)
        rows.append(f"| `{name}` | [{arch.display_name or arch.name}]({arch.paper_url}) | {variant.dataset} | {top1} | "
                    f"{params / 1e6:.1f}M | {side} | {arch.license} |")
    return "\n".join(rows)


def update_readme_table(readme_path) -> bool:
    """Rewrite the table between `<!-- models:start -->` and `<!-- models:end -->`; returns True if it changed."""
    from pathlib import Path

    path = Path(readme_path)
    text = path.read_text()
    start, end = "<!-- models:start -->", "<!-- models:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{model_table()}\n{end}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def _count_parameters(name: str) -> int:
    import torch

    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())
