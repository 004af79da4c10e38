"""Image processors for the zoo's Hyena N-D, both transformers backends (torchvision and PIL).

The official evaluation transform (DeiT's `datasets.build_transform` in Itamarzimm/HyenaND): bicubic resize of the
short side to 224 / 0.875 = 256, centre crop 224, ImageNet mean/std. Built on the zoo ViT's processors; grayscale,
RGBA and CMYK images are converted to RGB.
"""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil


class _HyenaNdPreprocessing:
    """What differs from the zoo ViT's (AugReg) defaults."""

    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}


class HyenaNdImageProcessor(_HyenaNdPreprocessing, VitImageProcessor):
    """Hyena N-D preprocessing on the torchvision backend (the default one)."""


class HyenaNdImageProcessorPil(_HyenaNdPreprocessing, VitImageProcessorPil):
    """Hyena N-D preprocessing on the PIL/numpy backend."""


__all__ = ["HyenaNdImageProcessor", "HyenaNdImageProcessorPil"]
