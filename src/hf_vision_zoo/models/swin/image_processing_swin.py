"""Image processors for the zoo's Swin, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform for 224 px models (microsoft/Swin-Transformer `data/build.py`):
bicubic resize of the short side to 256, centre crop 224, ImageNet mean/std. The 384 px variants resize straight
to 384x384 (their configs set `TEST.CROP: False`); the registry passes those settings per variant.
Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend

from ...image_processing_utils import ImageNetEvalPreprocessing


class SwinImageProcessor(ImageNetEvalPreprocessing, TorchvisionBackend):
    """Swin preprocessing on the torchvision backend (the default one)."""


class SwinImageProcessorPil(ImageNetEvalPreprocessing, PilBackend):
    """Swin preprocessing on the PIL/numpy backend."""


__all__ = ["SwinImageProcessor", "SwinImageProcessorPil"]
