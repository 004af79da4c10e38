"""Image processors for the zoo's S2AFormer, both transformers backends (torchvision and PIL).

No official code states the evaluation transform, so this is the standard ImageNet-1k evaluation used by the
efficient-ViT family the paper compares with (DeiT/PVT/Swin): bicubic resize of the short side to 256, centre crop
224 (crop ratio 0.875), ImageNet mean/std. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend

from ...image_processing_utils import ImageNetEvalPreprocessing


class S2AFormerImageProcessor(ImageNetEvalPreprocessing, TorchvisionBackend):
    """S2AFormer preprocessing on the torchvision backend (the default one)."""


class S2AFormerImageProcessorPil(ImageNetEvalPreprocessing, PilBackend):
    """S2AFormer preprocessing on the PIL/numpy backend."""


__all__ = ["S2AFormerImageProcessor", "S2AFormerImageProcessorPil"]
