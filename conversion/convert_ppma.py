#!/usr/bin/env python
"""Convert an official PPMA checkpoint (zhongchenzhao/PPMA, e.g. checkpoints/classification/PPMA_T_202502251000/
best.pth from the Hub repo ZhongchenZhao/PPMA) into a zoo model folder that loads with
`AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_ppma.py --checkpoint best.pth --variant ppma_tiny_224.in1k --output ppma-tiny

Without --variant or --config, the hyper-parameters are read off the checkpoint; the attention kind of each stage
is not visible in the weights, so give --chunkwise (e.g. `--chunkwise 1 1 0 0`) for non-published models.
The script checks zero missing and zero unexpected keys, and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.ppma import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "ppma_tiny_224.in1k", default_source="official",
                               config_help="config.json of a zoo PPMA model")
    parser.add_argument("--image-size", type=int, help="input resolution, when it is not the config's")
    parser.add_argument("--chunkwise", type=int, nargs="+", choices=(0, 1),
                        help="per stage: 1 = axial (chunkwise) attention, 0 = full polyline-mask attention")
    args = parser.parse_args(argv)
    overrides = {"image_size": args.image_size} if args.image_size else {}
    if args.chunkwise:
        overrides["chunkwise_recurrents"] = [bool(c) for c in args.chunkwise]
    return run_conversion("ppma", args, overrides)


if __name__ == "__main__":
    sys.exit(main())
