#!/usr/bin/env python
"""Convert an official MaskAlign checkpoint (OpenDriveLab/maskalign, `{'model': state_dict}` of
`models_pretrain.MaskedAutoencoderViT`) into a zoo model folder that loads with the Auto classes after
`import hf_vision_zoo`.

    # the whole pre-training model (student + Dynamic Alignment + CLIP teacher) -> MaskAlignForPreTraining
    python conversion/convert_maskalign.py --checkpoint maskalign_vit_base.pth \\
        --variant maskalign_vit_base_patch16_224.clip_b16_in1k_ep200 --task pretraining --output maskalign-base
    # the student only -> MaskAlignModel (reload with AutoModel / AutoModelForImageClassification to fine-tune)
    python conversion/convert_maskalign.py --checkpoint maskalign_vit_base.pth --task feature-extraction \\
        --output maskalign-base-encoder

Without --variant or --config the hyper-parameters are read off the checkpoint (the CLIP teacher's too). The
script checks zero missing and zero unexpected keys and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.maskalign import SOURCES
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion

TASKS = ("pretraining", "feature-extraction", "image-classification")


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "maskalign_vit_base_patch16_224.clip_b16_in1k_ep200",
                               default_source="official", config_help="config.json of a zoo MaskAlign model")
    parser.add_argument("--task", choices=TASKS, help="model to build (default: what the checkpoint holds)")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    args = parser.parse_args(argv)
    return run_conversion("maskalign", args, {"num_attention_heads": args.num_heads} if args.num_heads else {},
                          task=args.task)


if __name__ == "__main__":
    sys.exit(main())
