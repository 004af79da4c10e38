"""Image processors for the zoo's ViT, both transformers backends (torchvision and PIL).

Defaults are timm's evaluation transform for the AugReg ViTs (Steiner et al., 2021): bicubic resize of the short side
to 248 (crop_pct 0.9), centre crop 224, mean = std = 0.5. DeiT, MAE and DINO variants use the ImageNet mean/std and
crop_pct 0.875 (short side 256); the registry passes those settings per variant. Grayscale, RGBA and CMYK images
are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD

from ...image_processing_utils import ImageNetEvalPreprocessing


class _VitPreprocessing(ImageNetEvalPreprocessing):
    """timm's AugReg evaluation preprocessing, shared by both backends: the ImageNet evaluation transform with
    mean = std = 0.5 and crop_pct 0.9."""

    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD
    size = {"shortest_edge": 248}


class VitImageProcessor(_VitPreprocessing, TorchvisionBackend):
    """ViT preprocessing on the torchvision backend (the default one)."""


class VitImageProcessorPil(_VitPreprocessing, PilBackend):
    """ViT preprocessing on the PIL/numpy backend."""


__all__ = ["VitImageProcessor", "VitImageProcessorPil"]
