#!/usr/bin/env python
"""Convert an official GMML checkpoint (Sara-Ahmed/GMML `main.py`: `checkpoint.pth` with `SiT_model`, or a bare
backbone state dict) into a zoo model folder that loads with the Auto classes after `import hf_vision_zoo`.

    # the whole pre-training model (backbone + reconstruction head) -> GmmlForPreTraining
    python conversion/convert_gmml.py --checkpoint checkpoint.pth --variant gmml_vit_small_patch16_224 --output gmml-s
    # only the encoder -> GmmlModel (AutoModel)
    python conversion/convert_gmml.py --checkpoint checkpoint.pth --task feature-extraction --output gmml-s-encoder

Without --variant or --config the hyper-parameters are read off the checkpoint (heads: the published widths'; give
--num-heads otherwise; a backbone that is not 12 blocks deep needs --recons-blocks). The script checks zero missing
and zero unexpected keys and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.gmml import SOURCES, load_official_checkpoint
from hf_vision_zoo.conversion.script import conversion_parser, run_conversion

TASKS = ("pretraining", "feature-extraction")


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "gmml_vit_small_patch16_224", default_source="official",
                               config_help="config.json of a zoo GMML model")
    parser.add_argument("--task", choices=TASKS, help="model to build (default: what the checkpoint holds)")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    parser.add_argument("--recons-blocks", help="blocks averaged for the reconstruction, e.g. 6-8-10-12")
    args = parser.parse_args(argv)
    overrides = {}
    if args.num_heads:
        overrides["num_attention_heads"] = args.num_heads
    if args.recons_blocks:
        overrides["recons_blocks"] = args.recons_blocks
    return run_conversion("gmml", args, overrides, load=load_official_checkpoint, task=args.task)


if __name__ == "__main__":
    sys.exit(main())
