"""Image processors for MaskAlign models: the official fine-tuning evaluation transform is MAE's (MaskAlign's
`util/datasets.py`): bicubic resize of the short side to 256, centre crop 224, ImageNet mean/std. Pre-training feeds
the same ImageNet-normalised images; the model re-normalises them for the teacher."""

from ..mae.image_processing_mae import MaeImageProcessor, MaeImageProcessorPil


class MaskAlignImageProcessor(MaeImageProcessor):
    """MaskAlign preprocessing on the torchvision backend (the default one)."""


class MaskAlignImageProcessorPil(MaeImageProcessorPil):
    """MaskAlign preprocessing on the PIL/numpy backend."""


__all__ = ["MaskAlignImageProcessor", "MaskAlignImageProcessorPil"]
