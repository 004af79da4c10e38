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

import argparse
import sys

from hf_vision_zoo import registry
from hf_vision_zoo.conversion import ConversionError, build_config, convert_to_model, save_atomically
from hf_vision_zoo.conversion.hpm import load_official_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="official .pth (or a .safetensors state dict)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--variant", help="registered variant, e.g. hpm_vit_base_patch16_dec512d8b.in1k_ep800")
    group.add_argument("--config", help="config.json of a zoo HPM model")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    parser.add_argument("--output", required=True, help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    args = parser.parse_args(argv)
    overrides = {"num_attention_heads": args.num_heads} if args.num_heads else {}
    try:
        state_dict = load_official_checkpoint(args.checkpoint)
        config = build_config("hpm", state_dict, "official", variant=args.variant, config_file=args.config,
                              **overrides)
        model = convert_to_model("hpm", state_dict, config, "official", task="pretraining")
        processor = registry.create_image_processor(args.variant or "hpm")
        save_atomically(args.output, model, processor, overwrite=args.overwrite)
    except (ConversionError, FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.output}: {type(model).__name__}, {params:,} parameters "
          f"(model + EMA teacher), 0 missing / 0 unexpected keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
