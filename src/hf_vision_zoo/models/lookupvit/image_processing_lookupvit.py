"""Image processors for the zoo's LookupViT: the zoo ViT's preprocessing unchanged (the paper's evaluation
transform was not found; LookupViT's lookup tokens are ViT patch tokens, so the ViT transform is the natural one)."""

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil


class LookupVitImageProcessor(VitImageProcessor):
    """LookupViT preprocessing on the torchvision backend (the ViT's settings)."""


class LookupVitImageProcessorPil(VitImageProcessorPil):
    """LookupViT preprocessing on the PIL/numpy backend (the ViT's settings)."""


__all__ = ["LookupVitImageProcessor", "LookupVitImageProcessorPil"]
