"""Image processors for Sparsifiner models: the DeiT evaluation transform the official code inherits (timm
`create_transform` at 224: bicubic resize of the short side to 256 (crop_pct 0.875), centre crop 224, ImageNet
mean/std), on both backends; grayscale/RGBA/CMYK images are converted to RGB."""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil


class _DeitPreprocessing:
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}


class SparsifinerImageProcessor(_DeitPreprocessing, VitImageProcessor):
    """Sparsifiner preprocessing on the torchvision backend (the default one)."""


class SparsifinerImageProcessorPil(_DeitPreprocessing, VitImageProcessorPil):
    """Sparsifiner preprocessing on the PIL/numpy backend."""


__all__ = ["SparsifinerImageProcessor", "SparsifinerImageProcessorPil"]
