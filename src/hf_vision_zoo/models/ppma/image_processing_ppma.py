"""Image processors for the zoo's PPMA, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform (zhongchenzhao/PPMA `classification/datasets.py`,
`build_transform(is_train=False)` at input 224): bicubic resize of the short side to 256 (= 224 * 256 / 224),
centre crop 224, ImageNet default mean/std. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class _PpmaEvalTransform:
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


class PpmaImageProcessor(_PpmaEvalTransform, TorchvisionBackend):
    """PPMA preprocessing on the torchvision backend (the default one)."""


class PpmaImageProcessorPil(_PpmaEvalTransform, PilBackend):
    """PPMA preprocessing on the PIL/numpy backend."""


__all__ = ["PpmaImageProcessor", "PpmaImageProcessorPil"]
