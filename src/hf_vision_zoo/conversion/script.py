"""The command line shared by the `conversion/convert_<arch>.py` scripts: the common arguments, the call to
`convert_checkpoint` and its report (zero missing / zero unexpected keys, nothing left at --output on failure)."""

import argparse
import sys

from .. import registry
from . import _converter, build_config, convert_checkpoint, convert_to_model
from .common import ConversionError, save_atomically


def conversion_parser(description: str, sources, example_variant: str, default_source: str | None = None,
                      config_help: str = "config.json of the source model (transformers) or of a zoo model"
                      ) -> argparse.ArgumentParser:
    """`--source --checkpoint (--variant | --config) --output --overwrite`; scripts add their own options."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=default_source is None, default=default_source, choices=sources,
                        help="format of the checkpoint")
    parser.add_argument("--checkpoint", required=True, help=".pth/.pt/.bin/.safetensors state dict")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--variant", help=f"registered variant name, e.g. {example_variant}")
    group.add_argument("--config", help=config_help)
    parser.add_argument("--output", required=True, help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    return parser


def _convert_loaded(arch: str, args: argparse.Namespace, load, task: str | None = None, **overrides):
    """`convert_checkpoint` for a checkpoint that needs its own reader: `load(path)` gives the state dict; the image
    processor is the variant's, else the architecture's default."""
    state_dict = load(args.checkpoint)
    config = build_config(arch, state_dict, args.source, variant=args.variant, config_file=args.config, **overrides)
    if task is None:
        default_task = getattr(_converter(arch), "default_task", None)
        task = default_task(state_dict, args.source) if default_task else "image-classification"
    model = convert_to_model(arch, state_dict, config, args.source, task=task)
    save_atomically(args.output, model, registry.create_image_processor(args.variant or arch),
                    overwrite=args.overwrite)
    return model


def run_conversion(arch: str, args: argparse.Namespace, overrides: dict | None = None, describe=None,
                   load=None, **kwargs) -> int:
    """Convert as `args` says; print one line on success (plus `describe(model)`) or `error: ...`; exit code.
    `load(path) -> state dict` replaces the generic reader for checkpoints that need their own (e.g. EMA weights)."""
    try:
        if load is not None:
            model = _convert_loaded(arch, args, load, **kwargs, **(overrides or {}))
        else:
            model = convert_checkpoint(arch, args.checkpoint, args.source, args.output, variant=args.variant,
                                       config_file=args.config, overwrite=args.overwrite, **kwargs,
                                       **(overrides or {}))
    except (ConversionError, FileNotFoundError, FileExistsError, KeyError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    extra = f", {describe(model)}" if describe else ""
    print(f"converted {args.checkpoint} ({args.source}) -> {args.output}: {type(model).__name__}, {params:,} "
          f"parameters, {model.config.num_labels} labels{extra}, 0 missing / 0 unexpected keys")
    return 0
