"""Small building blocks shared by the zoo's models. Each is tested on its own in tests/test_layers.py."""

from .attention import eager_attention_forward, get_attention_function, get_cpu_tuned_attention_function
from .drop_path import DropPath, drop_path
from .helpers import to_2tuple
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .transformer import LayerScale, SelfAttention, TransformerBlock
from .relative_position import relative_position_bias, relative_position_index
from .window import pad_to_window, shifted_window_mask, window_partition, window_reverse

__all__ = [
    "eager_attention_forward", "get_attention_function", "get_cpu_tuned_attention_function", "DropPath", "drop_path", "to_2tuple", "Mlp", "PatchEmbed", "relative_position_bias", "relative_position_index",
    "LayerScale", "SelfAttention", "TransformerBlock",
    "pad_to_window", "shifted_window_mask", "window_partition", "window_reverse",
]
