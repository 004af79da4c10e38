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

import argparse
import json
import sys
from pathlib import Path

from hf_vision_zoo import registry
from hf_vision_zoo.conversion import ConversionError, convert_to_model, save_atomically
from hf_vision_zoo.conversion import gmml
from hf_vision_zoo.models.gmml import GmmlConfig

TASKS = ("pretraining", "feature-extraction")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="official .pth (SiT_model) or a bare state dict")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--variant", help="registered variant, e.g. gmml_vit_small_patch16_224")
    group.add_argument("--config", help="config.json of a zoo GMML model")
    parser.add_argument("--task", choices=TASKS, help="model to build (default: what the checkpoint holds)")
    parser.add_argument("--num-heads", type=int, help="attention heads, for widths other than the published ones")
    parser.add_argument("--recons-blocks", help="blocks averaged for the reconstruction, e.g. 6-8-10-12")
    parser.add_argument("--output", required=True, help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    args = parser.parse_args(argv)
    overrides = {}
    if args.num_heads:
        overrides["num_attention_heads"] = args.num_heads
    if args.recons_blocks:
        overrides["recons_blocks"] = args.recons_blocks
    try:
        state_dict = gmml.load_official_checkpoint(args.checkpoint)
        if args.variant:
            if registry.get_variant(args.variant).architecture != "gmml":
                raise ConversionError(f"Variant {args.variant!r} is not a GMML model")
            config = registry.get_config(args.variant, **overrides)
        elif args.config:
            data = json.loads(Path(args.config).read_text())
            if data.pop("model_type", None) != GmmlConfig.model_type:
                raise ConversionError(f"{args.config} is not a zoo GMML config (model_type {GmmlConfig.model_type})")
            config = GmmlConfig.from_dict({**data, **overrides})
        else:
            config = gmml.infer_config(state_dict, "official", **overrides)
        task = args.task or gmml.default_task(state_dict, "official")
        model = convert_to_model("gmml", state_dict, config, "official", task=task)
        processor = registry.create_image_processor(args.variant or "gmml")
        save_atomically(args.output, model, processor, overwrite=args.overwrite)
    except (ConversionError, FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.output}: {type(model).__name__}, {params:,} parameters, "
          f"0 missing / 0 unexpected keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
