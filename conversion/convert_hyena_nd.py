#!/usr/bin/env python
"""Convert an official Hyena N-D checkpoint (Itamarzimm/HyenaND `main.py` output or `model.state_dict()`) into a zoo
model folder that loads with `AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_hyena_nd.py --checkpoint checkpoint.pth --variant hyena_nd_deit_tiny_patch16_224 \\
        --output hyena-nd-tiny
    python conversion/convert_hyena_nd.py --checkpoint checkpoint.pth --directional-mode seq --output hyena-nd

No weights were released with the paper. Without --variant or --config, the hyper-parameters are read off the
checkpoint; what the weights do not show (the directional mode, the sqrt decay, the attention heads) comes from the
options below. The script checks zero missing and zero unexpected keys, and writes nothing at --output on failure.
"""

import argparse
import sys

import torch

from hf_vision_zoo.conversion.hyena_nd import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "hyena_nd_deit_tiny_patch16_224", default_source="official",
                               config_help="config.json of a zoo Hyena N-D model")
    parser.add_argument("--directional-mode", choices=("seq", "standard"),
                        help="the official --directional_mode (not visible in the weights; default seq)")
    parser.add_argument("--sqrt-decay", action="store_true", help="the checkpoint used --hyena2d_sqrt_decay")
    parser.add_argument("--num-heads", type=int, help="attention heads of the attention blocks (default width/64)")
    args = parser.parse_args(argv)
    overrides = {}
    if args.directional_mode:
        overrides["directional_mode"] = args.directional_mode
    if args.sqrt_decay:
        overrides["sqrt_decay"] = True
    if args.num_heads:
        overrides["num_attention_heads"] = args.num_heads
    # the official main.py stores its argparse Namespace next to the weights; allow exactly that class in the
    # weights-only unpickler
    with torch.serialization.safe_globals([argparse.Namespace]):
        return run_conversion("hyena_nd", args, overrides,
                              describe=lambda model: f"mixer_pattern {model.config.mixer_pattern}")


if __name__ == "__main__":
    sys.exit(main())
