#!/usr/bin/env python
"""Convert a CrossViT checkpoint (official IBM/CrossViT release .pth, or a timm crossvit_* state dict) into a zoo
model folder that loads with `AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_crossvit.py --source official --checkpoint crossvit_tiny_224.pth \\
        --variant crossvit_tiny_240.in1k --output crossvit-tiny
    python conversion/convert_crossvit.py --source timm --checkpoint model.safetensors --output crossvit-from-timm

The official release names models by the large-patch branch (crossvit_tiny_224); the zoo and timm by the input size
(crossvit_tiny_240). Without --variant or --config the hyper-parameters are read off the checkpoint (heads default to
embed_dim[0] // 32 as in every published model; give --num-heads otherwise). The script checks zero missing and zero
unexpected keys, and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.crossvit import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "crossvit_18_dagger_408.in1k",
                               config_help="config.json of a zoo CrossViT model")
    parser.add_argument("--num-heads", type=int, nargs="+", help="attention heads per branch (when inferring)")
    args = parser.parse_args(argv)
    return run_conversion("crossvit", args, {"num_heads": args.num_heads} if args.num_heads else {})


if __name__ == "__main__":
    sys.exit(main())
