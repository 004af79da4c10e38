"""Image processors for MTO models: the MAE/SimMIM evaluation transform (bicubic resize of the short side to 256,
centre crop 224, ImageNet mean/std), both backends."""

from ..mae.image_processing_mae import MaeImageProcessor, MaeImageProcessorPil


class MtoImageProcessor(MaeImageProcessor):
    """MTO preprocessing on the torchvision backend (the default one)."""


class MtoImageProcessorPil(MaeImageProcessorPil):
    """MTO preprocessing on the PIL/numpy backend."""


__all__ = ["MtoImageProcessor", "MtoImageProcessorPil"]
