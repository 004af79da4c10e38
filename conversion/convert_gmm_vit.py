#!/usr/bin/env python
"""Convert an official GMM-ViT checkpoint (CatworldLee/Gaussian-Mixture-Mask-Attention main.py, model 'vit':
`{'model_state_dict': ...}`) into a zoo model folder that loads with
`AutoModelForImageClassification.from_pretrained(DIR)` after `import hf_vision_zoo`.

    python conversion/convert_gmm_vit.py --source official --checkpoint checkpoint.pth \\
        --variant gmm_vit_lite_patch4_32.cifar100 --output gmm-vit-cifar100
    python conversion/convert_gmm_vit.py --source official --checkpoint elm.pth --num-heads 12 --output elm-vit

Without --variant or --config, the hyper-parameters are read off the checkpoint (GMM checkpoints store the number
of heads; give --num-heads for ELM or unmasked ones). The script checks zero missing and zero unexpected keys, and
writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.gmm_vit import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "gmm_vit_lite_patch4_32.cifar100")
    parser.add_argument("--num-heads", type=int, help="attention heads (needed for ELM / unmasked checkpoints)")
    args = parser.parse_args(argv)
    return run_conversion("gmm_vit", args, {"num_attention_heads": args.num_heads} if args.num_heads else {})


if __name__ == "__main__":
    sys.exit(main())
