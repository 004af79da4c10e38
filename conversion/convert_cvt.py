#!/usr/bin/env python
"""Convert a CvT checkpoint (official leoxiaobin/CvT .pth, or transformers) into a zoo model folder that loads with
`AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_cvt.py --source official --checkpoint CvT-13-224x224-IN-1k.pth \\
        --variant cvt_13_224.in1k --output cvt-13
    python conversion/convert_cvt.py --source transformers --checkpoint model.safetensors --config config.json \\
        --output cvt-from-transformers

Without --variant or --config, the hyper-parameters are read off the checkpoint (strides, paddings and heads are
the published CvT ones). Official checkpoints run QuickGELU, transformers' run exact GELU (their configs say so).
The script checks zero missing and zero unexpected keys, and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.cvt import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "cvt_13_224.in1k")
    parser.add_argument("--image-size", type=int, help="the resolution the processor should prepare (default 224)")
    args = parser.parse_args(argv)
    return run_conversion("cvt", args, {"image_size": args.image_size} if args.image_size else {})


if __name__ == "__main__":
    sys.exit(main())
