"""Image processors for the zoo's CvT, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform for 224 px models (leoxiaobin/CvT `lib/dataset/transformas/build.py`
with `TEST.INTERPOLATION: 3`): bicubic resize of the short side to int(224 / 0.875) = 256, centre crop 224, ImageNet
mean/std. The 384 px models (`TEST.CENTER_CROP: False`) resize straight to 384x384; the registry passes those
settings per variant. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend

from ...image_processing_utils import ImageNetEvalPreprocessing


class CvtImageProcessor(ImageNetEvalPreprocessing, TorchvisionBackend):
    """CvT preprocessing on the torchvision backend (the default one)."""


class CvtImageProcessorPil(ImageNetEvalPreprocessing, PilBackend):
    """CvT preprocessing on the PIL/numpy backend."""


__all__ = ["CvtImageProcessor", "CvtImageProcessorPil"]
