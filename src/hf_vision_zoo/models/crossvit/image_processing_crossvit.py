"""Image processors for the zoo's CrossViT, both transformers backends (torchvision and PIL).

Defaults are the official evaluation transform of IBM/CrossViT (`datasets.build_transform` with the default
`--input-size 240 --crop-ratio 256/224`): bicubic resize of the short side to int(240 * 256 / 224) = 274, centre
crop 240, ImageNet mean/std. The model itself then bicubic-resizes the 240 px image to 224 px for the large-patch
branch. The 408 px models use the same rule at their input size (resize 466, crop 408); the registry passes
those settings per variant. The centre crop rounds its offsets as torchvision's `CenterCrop` does. Grayscale, RGBA and CMYK images are converted to RGB.
"""

from transformers.image_processing_backends import PilBackend, TorchvisionBackend

from ...image_processing_utils import ImageNetEvalPreprocessing

CROP_RATIO = 256 / 224  # the official --crop-ratio


def eval_preprocessing(input_size: int) -> dict:
    """The official evaluation resize/crop for `input_size` px model inputs."""
    return {"size": {"shortest_edge": int(CROP_RATIO * input_size)},
            "crop_size": {"height": input_size, "width": input_size}, "do_center_crop": True}


class _CrossVitPreprocessing(ImageNetEvalPreprocessing):
    """The official evaluation preprocessing, shared by both backends: the ImageNet evaluation transform at 240 px
    with torchvision's crop rounding."""

    size = {"shortest_edge": 274}
    crop_size = {"height": 240, "width": 240}

    def center_crop(self, image, size, **kwargs):
        """torchvision's `CenterCrop` offsets (`round((H - h) / 2)`), which the official evaluation uses; the backends'
        own crop floors them, one pixel off whenever the margin is odd. Images smaller than the crop are padded by
        the backend as before."""
        height, width = image.shape[-2:]
        if size.height is None or size.width is None or size.height > height or size.width > width:
            return super().center_crop(image, size, **kwargs)
        top, left = int(round((height - size.height) / 2.0)), int(round((width - size.width) / 2.0))
        return image[..., top:top + size.height, left:left + size.width]


class CrossVitImageProcessor(_CrossVitPreprocessing, TorchvisionBackend):
    """CrossViT preprocessing on the torchvision backend (the default one)."""


class CrossVitImageProcessorPil(_CrossVitPreprocessing, PilBackend):
    """CrossViT preprocessing on the PIL/numpy backend."""


__all__ = ["CrossVitImageProcessor", "CrossVitImageProcessorPil", "eval_preprocessing"]
