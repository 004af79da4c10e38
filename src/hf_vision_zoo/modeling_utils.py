"""What every zoo model shares: its PreTrainedModel base class and the input checks of its public `forward`."""

import torch
from transformers.modeling_utils import PreTrainedModel


class ZooPreTrainedModel(PreTrainedModel):
    """Base of every zoo `XPreTrainedModel`: image input, gradient checkpointing, switchable attention backends."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers decides this by searching the modeling file's text for `ALL_ATTENTION_FUNCTIONS.get_interface(`;
        # zoo models call it through `layers.get_attention_function` on every forward, so switching always works.
        return True


def check_pixel_values(pixel_values: torch.Tensor | None, num_channels: int, check_finite: bool = True) -> None:
    """Fail with a clear message on input a vision model cannot use: not a 4-D float tensor, the wrong number of
    channels, an empty batch, or NaN/inf pixels (which would otherwise spread silently through every token)."""
    if pixel_values is None:
        raise ValueError("pixel_values is required")
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have shape (batch, channels, height, width), got {tuple(pixel_values.shape)}"
        )
    if not pixel_values.is_floating_point():
        raise TypeError(f"pixel_values must be a float tensor (use the image processor), got {pixel_values.dtype}")
    if pixel_values.shape[0] == 0:
        raise ValueError("pixel_values is an empty batch")
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[1]} channels but the model expects {num_channels} "
            f"(config.num_channels); convert the images (e.g. to RGB) with the model's image processor"
        )
    if check_finite and not torch.compiler.is_compiling() and not torch.isfinite(pixel_values).all():
        raise ValueError("pixel_values contains NaN or infinite values")
