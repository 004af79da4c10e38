"""Image processors for the zoo's Path-Ensemble ViT: the zoo ViT's preprocessing unchanged (the model is a ViT with
the same weights; a converted checkpoint keeps its variant's preprocessing through `create_model`)."""

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil


class PathEnsembleVitImageProcessor(VitImageProcessor):
    """Path-Ensemble ViT preprocessing on the torchvision backend (the ViT's settings)."""


class PathEnsembleVitImageProcessorPil(VitImageProcessorPil):
    """Path-Ensemble ViT preprocessing on the PIL/numpy backend (the ViT's settings)."""


__all__ = ["PathEnsembleVitImageProcessor", "PathEnsembleVitImageProcessorPil"]
