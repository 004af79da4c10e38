"""Image processors for MAE models: the official evaluation transform (facebookresearch/mae `util/datasets.py`):
bicubic resize of the short side to 256 (crop_pct 0.875), centre crop 224, ImageNet mean/std. Same classes as the ViT
processors otherwise (both backends, RGB conversion)."""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil


class _MaePreprocessing:
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}


class MaeImageProcessor(_MaePreprocessing, VitImageProcessor):
    """MAE preprocessing on the torchvision backend (the default one)."""


class MaeImageProcessorPil(_MaePreprocessing, VitImageProcessorPil):
    """MAE preprocessing on the PIL/numpy backend."""


__all__ = ["MaeImageProcessor", "MaeImageProcessorPil"]
