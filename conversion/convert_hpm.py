#!/usr/bin/env python
"""Convert an official HPM checkpoint (Haochen-Wang409/HPM `main_pretrain.py` output or the released Google Drive
files) into a zoo `HpmForPreTraining` folder that loads with `AutoModelForPreTraining` after `import hf_vision_zoo`
(and whose encoder loads with `AutoModel`).

    python conversion/convert_hpm.py --checkpoint hpm_vit_base_ep800.pth \\
        --variant hpm_vit_base_patch16_dec512d8b.in1k_ep800 --output hpm-base

The model weights come from `state_dict` (or `model`, or a bare state dict; DDP `module.` prefixes are removed); the
EMA weights (`ema_state_dict`), when present, become the mask-generating teacher, else the teacher is a copy of the
model. Without --variant/--config the hyper-parameters are read off the checkpoint. Zero missing and zero unexpected
keys are required, and nothing is written at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.hpm import SOURCES, load_official_checkpoint
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "hpm_vit_base_patch16_dec512d8b.in1k_ep800", default_source="official",
                               config_help="config.json of a zoo HPM model")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    args = parser.parse_args(argv)
    return run_conversion("hpm", args, {"num_attention_heads": args.num_heads} if args.num_heads else {},
                          describe=lambda model: "model + EMA teacher", load=load_official_checkpoint,
                          task="pretraining")


if __name__ == "__main__":
    sys.exit(main())
