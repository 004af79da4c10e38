"""Image processors for GMM-ViT: the official evaluation transform (`utils/dataloader.py`): resize to the model's
input size (32 px for CIFAR/SVHN, 64 px for Tiny-ImageNet), to tensor, normalise with the data set's mean/std.
Defaults are CIFAR-100's statistics at 32 px; a centre crop of the same size keeps non-square photos working (a
no-op on the square data sets). Both backends; grayscale/RGBA/CMYK images are converted to RGB."""

from transformers.image_utils import PILImageResampling

from ..vit.image_processing_vit import VitImageProcessor, VitImageProcessorPil

CIFAR100_MEAN, CIFAR100_STD = [0.5070, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]


class _GmmVitPreprocessing:
    resample = PILImageResampling.BILINEAR  # torchvision transforms.Resize's default
    image_mean = CIFAR100_MEAN
    image_std = CIFAR100_STD
    size = {"shortest_edge": 32}
    crop_size = {"height": 32, "width": 32}


class GmmVitImageProcessor(_GmmVitPreprocessing, VitImageProcessor):
    """GMM-ViT preprocessing on the torchvision backend (the default one)."""


class GmmVitImageProcessorPil(_GmmVitPreprocessing, VitImageProcessorPil):
    """GMM-ViT preprocessing on the PIL/numpy backend."""


__all__ = ["GmmVitImageProcessor", "GmmVitImageProcessorPil"]
