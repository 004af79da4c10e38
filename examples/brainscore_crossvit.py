#!/usr/bin/env python
"""The Brain-Score CrossViT recipe: joint rotation invariance and fast adversarial training of CrossViT-18 dagger.

Paper: W. Berrios and A. Deza, "Joint rotational invariance and adversarial training of a dual-stream Transformer
yields state of the art Brain-Score for Area V4", Brain-Score Workshop 2022. Official code:
github.com/williamberrios/BrainScore-Transformers (commit ef80b74, Fast-Adversarial-Training/).

This is `hf_vision_zoo.training.main` with `--recipe brainscore_crossvit18` as the default preset (the paper's
"+Rotation+Adv" model; `--recipe brainscore_crossvit18_adv`, `_rot` or `_rot_adv_gray` give the ablations). The preset
sets the official configs_fast_2px.yml: Adam, LR 8e-5 -> 2e-4 over the first epoch then halving every epoch, weight
decay 1e-4, 6 epochs, batch 64, seed 0, bf16 autocast (the official run used fp16 AMP), random-resized-crop + flip,
rotations by 90 and 180 degrees with p=0.5 each, FGSM with a uniform random start, eps 2/255, step 2.5/255, and the
evaluation crop 224/256. Any option given on the command line overrides the preset; `--help` lists them all.

Fine-tune ImageNet weights (the official run starts from timm's pretrained crossvit_18_dagger_408), e.g.:
    hf-vision-zoo convert crossvit --source timm --checkpoint crossvit_18_dagger_408.safetensors \
        --variant crossvit_18_dagger_408.in1k --output crossvit18d-in1k
    accelerate launch examples/brainscore_crossvit.py --pretrained crossvit18d-in1k \
        --dataset /data/imagenet --output-dir crossvit18d-rot-adv
    hf-vision-zoo evaluate crossvit18d-rot-adv --dataset /data/imagenet --eval-split val --pgd-steps 10 \
        --adv-epsilon 2/255 --adv-alpha 1/255
A quick CPU try-out on Fashion-MNIST with a tiny dual-branch CrossViT at 28 px (about a minute on 2 cores):
    python examples/brainscore_crossvit.py --model crossvit --model-overrides image_size=[32,32] \
        patch_size=[4,8] embed_dim=[16,32] depth=[[1,1,0]] num_heads=[2,2] mlp_ratio=[2,2,1] \
        --input-size 28 --adv-epsilon 0.1 --adv-alpha 0.125 --learning-rate 5e-3 --max-train-samples 2048 \
        --max-eval-samples 500 --epochs 3 --mixed-precision no --output-dir outputs/crossvit-fat
    hf-vision-zoo evaluate outputs/crossvit-fat --max-eval-samples 500 --pgd-steps 10 --adv-epsilon 0.1
"""

import os
import sys

from hf_vision_zoo.training import main
from hf_vision_zoo.training.arguments import RECIPES

DEFAULT_RECIPE = "brainscore_crossvit18"


def run(argv: list[str]) -> int:
    if not any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        argv = ["--recipe", DEFAULT_RECIPE, *argv]
    recipe = next((argv[i + 1] if a == "--recipe" and i + 1 < len(argv) else a.split("=", 1)[1]
                   for i, a in enumerate(argv) if a == "--recipe" or a.startswith("--recipe=")), None)
    quiet = "--help" in argv or "-h" in argv or os.environ.get("RANK", "0") != "0"
    if recipe in RECIPES and not quiet:
        settings = ", ".join(f"{k}={v}" for k, v in RECIPES[recipe].items())
        print(f"recipe {recipe}: {settings} (options on the command line override these)", flush=True)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
