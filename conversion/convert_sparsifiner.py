#!/usr/bin/env python
"""Convert a Sparsifiner checkpoint (official lim142857/Sparsifiner state dict), or a DeiT checkpoint to start
Sparsifiner training from, into a zoo model folder that loads with
`AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_sparsifiner.py --source official --checkpoint checkpoint.pth \\
        --variant sparsifiner_deit_small_patch16_224 --output sparsifiner-s
    python conversion/convert_sparsifiner.py --source deit --checkpoint deit_small_patch16_224-cd65a155.pth \\
        --variant sparsifiner_deit_small_patch16_224 --output sparsifiner-s-init

Without --variant or --config, the sizes are read off the checkpoint (the keep rate and thresholds take the official
defaults; override with --attn-keep-rate). The script checks zero missing and zero unexpected keys, and writes nothing
at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.script import conversion_parser, run_conversion
from hf_vision_zoo.conversion.sparsifiner import SOURCES


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "sparsifiner_deit_small_patch16_224")
    parser.add_argument("--attn-keep-rate", type=float, help="fraction of keys each patch query attends to")
    args = parser.parse_args(argv)
    return run_conversion("sparsifiner", args, {"attn_keep_rate": args.attn_keep_rate} if args.attn_keep_rate else {})


if __name__ == "__main__":
    sys.exit(main())
