#!/usr/bin/env python
"""Convert a Swin Transformer checkpoint (official microsoft/Swin-Transformer .pth, timm, or transformers) into a zoo
model folder that loads with `AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_swin.py --source official --checkpoint swin_tiny_patch4_window7_224.pth \\
        --variant swin_tiny_patch4_window7_224.ms_in1k --output swin-tiny
    python conversion/convert_swin.py --source transformers --checkpoint model.safetensors --config config.json \\
        --output swin-from-transformers

Without --variant or --config, the hyper-parameters are read off the checkpoint (give --image-size if not 224).
The script checks zero missing and zero unexpected keys, and writes nothing at --output if anything fails.
"""

import argparse
import sys

from hf_vision_zoo.conversion import ConversionError, convert_checkpoint
from hf_vision_zoo.conversion.swin import SOURCES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES, help="format of the checkpoint")
    parser.add_argument("--checkpoint", required=True, help=".pth/.pt/.bin/.safetensors state dict")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--variant", help="registered variant name, e.g. swin_tiny_patch4_window7_224.ms_in1k")
    group.add_argument("--config", help="config.json of the source model (transformers) or of a zoo model")
    parser.add_argument("--image-size", type=int, help="input resolution, when it is not the config's")
    parser.add_argument("--output", required=True, help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    args = parser.parse_args(argv)
    overrides = {"image_size": args.image_size} if args.image_size else {}
    try:
        model = convert_checkpoint("swin", args.checkpoint, args.source, args.output, variant=args.variant,
                                   config_file=args.config, overwrite=args.overwrite, **overrides)
    except (ConversionError, FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} ({args.source}) -> {args.output}: {params:,} parameters, "
          f"{model.config.num_labels} labels, 0 missing / 0 unexpected keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
