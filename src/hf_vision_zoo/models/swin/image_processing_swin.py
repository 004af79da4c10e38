"""Image processors for the zoo's Swin, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform for 224 px models (microsoft/Swin-Transformer `data/build.py`):
bicubic resize of the short side to 256, centre crop 224, ImageNet mean/std. The 384 px variants resize straight
to 384x384 (their configs set `TEST.CROP: False`); the registry passes those settings per variant.
Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class _SwinPreprocessing:
    """The official evaluation preprocessing, shared by both backends."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


class SwinImageProcessor(_SwinPreprocessing, TorchvisionBackend):
    """Swin preprocessing on the torchvision backend (the default one)."""


class SwinImageProcessorPil(_SwinPreprocessing, PilBackend):
    """Swin preprocessing on the PIL/numpy backend."""


__all__ = ["SwinImageProcessor", "SwinImageProcessorPil"]
