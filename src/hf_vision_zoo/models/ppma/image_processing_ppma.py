"""Image processors for the zoo's PPMA, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform (zhongchenzhao/PPMA `classification/datasets.py`,
`build_transform(is_train=False)` at input 224): bicubic resize of the short side to 256 (= 224 * 256 / 224),
centre crop 224, ImageNet default mean/std. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend

from ...image_processing_utils import ImageNetEvalPreprocessing


class PpmaImageProcessor(ImageNetEvalPreprocessing, TorchvisionBackend):
    """PPMA preprocessing on the torchvision backend (the default one)."""


class PpmaImageProcessorPil(ImageNetEvalPreprocessing, PilBackend):
    """PPMA preprocessing on the PIL/numpy backend."""


__all__ = ["PpmaImageProcessor", "PpmaImageProcessorPil"]
