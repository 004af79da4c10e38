#!/usr/bin/env python
"""Convert a ViT / DeiT / DINO / MAE checkpoint (official .pth, timm, or transformers) into a zoo model folder that
loads with the Auto classes after `import hf_vision_zoo`.

    # a timm or official DeiT/DINO/MAE-fine-tuned ViT -> VitForImageClassification (or VitModel without a head)
    python conversion/convert_vit.py --source official --checkpoint mae_finetuned_vit_base.pth \\
        --variant vit_base_patch16_224.mae_ft_in1k --output vit-base-mae-ft
    # transformers ViTForImageClassification / ViTModel (config.json beside the weights)
    python conversion/convert_vit.py --source transformers --checkpoint model.safetensors --config config.json \\
        --output vit-from-transformers
    # the official MAE pre-training model (encoder + decoder) -> MaeForPreTraining
    python conversion/convert_vit.py --arch mae --source official --checkpoint mae_visualize_vit_base.pth \\
        --variant mae_vit_base_patch16_dec512d8b.in1k_visualize --output mae-base

With --arch vit, an MAE pre-training checkpoint gives its encoder (the decoder is left out). Without --variant or
--config the hyper-parameters are read off the checkpoint (heads: the published models'; give --num-heads
otherwise). The script checks zero missing and zero unexpected keys and writes nothing at --output if anything fails.
"""

import sys

from hf_vision_zoo.conversion.script import conversion_parser, run_conversion
from hf_vision_zoo.conversion.vit import SOURCES

TASKS = ("image-classification", "feature-extraction", "pretraining")


def main(argv=None) -> int:
    parser = conversion_parser(__doc__, SOURCES, "vit_base_patch16_224.augreg_in21k_ft_in1k")
    parser.add_argument("--arch", choices=("vit", "mae"), default="vit", help="target model family (default vit)")
    parser.add_argument("--task", choices=TASKS,
                        help="model to build (default: what the checkpoint holds; pretraining needs --arch mae)")
    parser.add_argument("--image-size", type=int, help="input resolution, when it is not the checkpoint's")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    args = parser.parse_args(argv)
    if args.task == "pretraining" and args.arch != "mae":
        parser.error("--task pretraining needs --arch mae")
    overrides = {}
    if args.image_size:
        overrides["image_size"] = args.image_size
    if args.num_heads:
        overrides["num_attention_heads"] = args.num_heads
    return run_conversion(args.arch, args, overrides, task=args.task)


if __name__ == "__main__":
    sys.exit(main())
