#!/usr/bin/env python
"""Self-supervised pre-training of any registered `XForPreTraining` model (MAE and the masked-image-modeling methods
built on it) with accelerate: a thin entry point to `hf_vision_zoo.training.pretrain_main` (`--help` lists every
option; `hf-vision-zoo pretrain ...` is the same command).

One process (a tiny MAE ViT on Fashion-MNIST):
    accelerate launch examples/pretrain.py --model mae --model-overrides image_size=28 patch_size=4 num_channels=1 \
        hidden_size=64 num_hidden_layers=4 num_attention_heads=4 decoder_hidden_size=32 \
        decoder_num_hidden_layers=1 decoder_num_attention_heads=4 mask_ratio=0.75 \
        --dataset fashion_mnist --epochs 10 --batch-size 128 --learning-rate 1e-3 --output-dir outputs/mae-fmnist
Two CPU processes: ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
    --mixed_precision no --dynamo_backend no examples/pretrain.py ...same options...
Resume an interrupted run exactly: add `--resume latest`.
Then linear probing / fine-tuning of the encoder through the classification loop:
    accelerate launch examples/train_image_classification.py --pretrained outputs/mae-fmnist --linear-probe \
        --dataset fashion_mnist --no-augment --weight-decay 0 --output-dir outputs/mae-fmnist-probe
    accelerate launch examples/train_image_classification.py --pretrained outputs/mae-fmnist \
        --model-overrides pooling=mean drop_path_rate=0.1 --layer-decay 0.75 --output-dir outputs/mae-fmnist-ft
"""

import sys

from hf_vision_zoo.training import pretrain_main

if __name__ == "__main__":
    sys.exit(pretrain_main())
