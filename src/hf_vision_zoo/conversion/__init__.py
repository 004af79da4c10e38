"""Checkpoint converters: official / timm / transformers weights -> zoo models saved with `save_pretrained`.

`convert_checkpoint(arch, checkpoint, source, ...)` is what the `conversion/convert_<arch>.py` scripts and the
`hf-vision-zoo convert` command call.
"""

import json
import os
from pathlib import Path

from .. import registry
from . import crossvit, cvt, gmml, hpm, hyena_nd, mae, ppma, swin, vit
from . import maskalign
from . import gmm_vit
from . import sparsifiner
from .common import ConversionError, load_state_dict_file, load_strict, save_atomically

CONVERTERS = {"swin": swin, "cvt": cvt, "crossvit": crossvit, "ppma": ppma, "vit": vit, "mae": mae, "hpm": hpm,
              "hyena_nd": hyena_nd, "gmml": gmml,
              "maskalign": maskalign, "gmm_vit": gmm_vit, "sparsifiner": sparsifiner}


def _converter(arch: str):
    if arch not in CONVERTERS:
        raise ConversionError(f"No converter for architecture {arch!r}; available: {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[arch]


def build_config(arch: str, state_dict: dict, source: str, variant: str | None = None,
                 config_file: str | os.PathLike | None = None, **overrides):
    """The target config: from a registered variant, from a config.json (zoo or transformers), or read off the
    checkpoint's shapes; `overrides` (e.g. image_size) win."""
    converter = _converter(arch)
    if variant is not None and config_file is not None:
        raise ValueError("Give either a variant or a config file, not both")
    if variant is not None:
        if registry.get_variant(variant).architecture != arch:
            raise ConversionError(f"Variant {variant!r} is not a {arch} model")
        return registry.get_config(variant, **overrides)
    if config_file is not None:
        data = json.loads(Path(config_file).read_text())
        zoo_config_class = registry.get_architecture(arch).config_class
        if data.get("model_type") == zoo_config_class.model_type:
            data.pop("model_type")
            data.update(overrides)
            return zoo_config_class.from_dict(data)
        return converter.config_from_transformers(data, **overrides)
    return converter.infer_config(state_dict, source, **overrides)


def convert_to_model(arch: str, state_dict: dict, config, source: str, task: str = "image-classification"):
    """Convert `state_dict` and load it strictly into a new zoo model for `task`."""
    converter = _converter(arch)
    converted = converter.convert_state_dict(state_dict, config, source)
    # a converter may build heads the registry does not list (e.g. MAE's "pretraining")
    model_class = getattr(converter, "MODEL_CLASSES", {}).get(task) or registry.get_architecture(arch).model_classes[task]
    if task == "feature-extraction":
        prefix = model_class.base_model_prefix + "."
        converted = {k[len(prefix):]: v for k, v in converted.items() if k.startswith(prefix)}
    elif task == "backbone":  # the backbone has its own per-stage norms and no final norm or head
        unused = tuple(p.replace("\\", "").lstrip("^") for p in model_class._keys_to_ignore_on_load_unexpected
                       if p.startswith("^"))
        converted = {k: v for k, v in converted.items() if not k.startswith(unused)}
    return load_strict(model_class(config), converted).eval()


def convert_checkpoint(arch: str, checkpoint: str | os.PathLike, source: str, output_dir: str | os.PathLike,
                       variant: str | None = None, config_file: str | os.PathLike | None = None,
                       overwrite: bool = False, task: str | None = None, **overrides):
    """Read `checkpoint`, convert it, check zero missing/unexpected keys, and write model + image processor to
    `output_dir` (atomically). Returns the loaded model."""
    state_dict = load_state_dict_file(checkpoint)
    config = build_config(arch, state_dict, source, variant=variant, config_file=config_file, **overrides)
    if task is None:  # by default what the checkpoint holds, if the converter can tell, else a classifier
        default_task = getattr(_converter(arch), "default_task", None)
        task = default_task(state_dict, source) if default_task else "image-classification"
    model = convert_to_model(arch, state_dict, config, source, task=task)
    if variant is not None:
        processor = registry.create_image_processor(variant)
    elif hasattr(_converter(arch), "image_processor_settings"):  # the architecture's own rule for its input size
        processor = registry.create_image_processor(arch, **_converter(arch).image_processor_settings(config))
    else:  # no published preprocessing: crop like the 224 px models, or resize straight to another input size
        size = config.image_size_2d
        settings = {} if size == (224, 224) else {"size": {"height": size[0], "width": size[1]},
                                                  "do_center_crop": False}
        processor = registry.create_image_processor(arch, **settings)
    save_atomically(output_dir, model, processor, overwrite=overwrite)
    return model


__all__ = ["CONVERTERS", "ConversionError", "build_config", "convert_checkpoint", "convert_to_model",
           "load_state_dict_file", "load_strict", "save_atomically"]
