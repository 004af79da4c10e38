#!/usr/bin/env python
"""Train any registered image-classification model with accelerate (a thin entry point to
`hf_vision_zoo.training.main`; `--help` lists every option).

One process:
    python examples/train_image_classification.py --model swin --model-overrides image_size=28 patch_size=2 \
        embed_dim=32 depths=[2,2] num_heads=[2,4] window_size=7 --dataset fashion_mnist --epochs 2 \
        --output-dir outputs/swin-fmnist
Two CPU processes (DDP over gloo; `--cpu --num_processes 2` would silently run ONE process):
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no examples/train_image_classification.py ...same options...
Resume an interrupted run exactly: add `--resume latest` (or `--resume RUN_DIR/checkpoints/step_N`).
"""

import sys

from hf_vision_zoo.training import main

if __name__ == "__main__":
    sys.exit(main())
