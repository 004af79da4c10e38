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

import sys

from hf_vision_zoo.conversion.script import conversion_parser, run_conversion
from hf_vision_zoo.conversion.swin import SOURCES


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "swin_tiny_patch4_window7_224.ms_in1k")
    parser.add_argument("--image-size", type=int, help="input resolution, when it is not the config's")
    args = parser.parse_args(argv)
    return run_conversion("swin", args, {"image_size": args.image_size} if args.image_size else {})


if __name__ == "__main__":
    sys.exit(main())
