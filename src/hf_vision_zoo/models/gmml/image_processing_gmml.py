"""Image processors for GMML models. The official repository ships only pre-training (ImageNet mean/std,
DINO-derived); evaluation follows the DINO/MAE convention: bicubic resize of the short side to 256, centre crop
224, ImageNet mean/std (both backends, RGB conversion)."""

from ..mae.image_processing_mae import MaeImageProcessor, MaeImageProcessorPil


class GmmlImageProcessor(MaeImageProcessor):
    """GMML preprocessing on the torchvision backend (the default one)."""


class GmmlImageProcessorPil(MaeImageProcessorPil):
    """GMML preprocessing on the PIL/numpy backend."""


__all__ = ["GmmlImageProcessor", "GmmlImageProcessorPil"]
