"""Image processors for the zoo's CvT, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform for 224 px models (leoxiaobin/CvT `lib/dataset/transformas/build.py`
with `TEST.INTERPOLATION: 3`): bicubic resize of the short side to int(224 / 0.875) = 256, centre crop 224, ImageNet
mean/std. The 384 px models (`TEST.CENTER_CROP: False`) resize straight to 384x384; the registry passes those
settings per variant. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class _CvtEvalTransform:
    """CvT's evaluation preprocessing, as class attributes both backends read."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": int(224 / 0.875)}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


class CvtImageProcessor(_CvtEvalTransform, TorchvisionBackend):
    """CvT preprocessing on the torchvision backend (the default one)."""


class CvtImageProcessorPil(_CvtEvalTransform, PilBackend):
    """CvT preprocessing on the PIL/numpy backend."""


__all__ = ["CvtImageProcessor", "CvtImageProcessorPil"]
