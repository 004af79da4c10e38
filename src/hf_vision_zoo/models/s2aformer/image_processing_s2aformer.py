"""Image processors for the zoo's S2AFormer, both transformers backends (torchvision and PIL).

No official code states the evaluation transform, so this is the standard ImageNet-1k evaluation used by the
efficient-ViT family the paper compares with (DeiT/PVT/Swin): bicubic resize of the short side to 256, centre crop
224 (crop ratio 0.875), ImageNet mean/std. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class _ImageNetEvalPreprocessing:
    """Settings shared by both backends."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean, image_std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    size, crop_size = {"shortest_edge": 256}, {"height": 224, "width": 224}
    do_resize = do_center_crop = do_rescale = do_normalize = do_convert_rgb = True


class S2AFormerImageProcessor(_ImageNetEvalPreprocessing, TorchvisionBackend):
    """S2AFormer preprocessing on the torchvision backend (the default one)."""


class S2AFormerImageProcessorPil(_ImageNetEvalPreprocessing, PilBackend):
    """S2AFormer preprocessing on the PIL/numpy backend."""


__all__ = ["S2AFormerImageProcessor", "S2AFormerImageProcessorPil"]
