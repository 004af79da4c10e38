"""Image processors for Hybrid Distill students: the MAE evaluation transform (bicubic resize of the short side to
256, centre crop 224, ImageNet mean/std), both backends. Pre-training feeds the same images to the student and to
both teachers."""

from ..mae.image_processing_mae import MaeImageProcessor, MaeImageProcessorPil


class HybridDistillImageProcessor(MaeImageProcessor):
    """Hybrid Distill preprocessing on the torchvision backend (the default one)."""


class HybridDistillImageProcessorPil(MaeImageProcessorPil):
    """Hybrid Distill preprocessing on the PIL/numpy backend."""


__all__ = ["HybridDistillImageProcessor", "HybridDistillImageProcessorPil"]
