"""Preprocessing settings shared by several zoo image processors (each model still has its own processor classes,
so saved folders name them and `AutoImageProcessor` finds them)."""

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling


class ImageNetEvalPreprocessing:
    """The common ImageNet-1k evaluation transform of the DeiT/Swin family: bicubic resize of the short side to 256,
    centre crop 224 (crop ratio 0.875), ImageNet default mean/std; grayscale, RGBA and CMYK converted to RGB.
    Mix it in before a transformers backend (`TorchvisionBackend` or `PilBackend`)."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
