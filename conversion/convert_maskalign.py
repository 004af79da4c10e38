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

import argparse
import sys

from hf_vision_zoo.conversion import ConversionError, convert_checkpoint

TASKS = ("pretraining", "feature-extraction", "image-classification")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help=".pth/.safetensors official checkpoint")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--variant", help="registered variant, e.g. maskalign_vit_base_patch16_224.clip_b16_in1k_ep200")
    group.add_argument("--config", help="config.json of a zoo MaskAlign model")
    parser.add_argument("--task", choices=TASKS, help="model to build (default: what the checkpoint holds)")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    parser.add_argument("--output", required=True, help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    args = parser.parse_args(argv)
    overrides = {"num_attention_heads": args.num_heads} if args.num_heads else {}
    try:
        model = convert_checkpoint("maskalign", args.checkpoint, "official", args.output, variant=args.variant,
                                   config_file=args.config, overwrite=args.overwrite, task=args.task, **overrides)
    except (ConversionError, FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.output}: {type(model).__name__}, {params:,} parameters, "
          f"0 missing / 0 unexpected keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
