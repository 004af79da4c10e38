"""Image processors for HPM models: the official evaluation transform is MAE's (HPM's `main_finetune.py` /
`util/datasets.py`): bicubic resize of the short side to 256, centre crop 224, ImageNet mean/std."""

from ..mae.image_processing_mae import MaeImageProcessor, MaeImageProcessorPil


class HpmImageProcessor(MaeImageProcessor):
    """HPM preprocessing on the torchvision backend (the default one)."""


class HpmImageProcessorPil(MaeImageProcessorPil):
    """HPM preprocessing on the PIL/numpy backend."""


__all__ = ["HpmImageProcessor", "HpmImageProcessorPil"]
