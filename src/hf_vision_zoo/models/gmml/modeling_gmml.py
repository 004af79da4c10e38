"""GMML, Group Masked Model Learning (Atito, Awais and Kittler, "GMML is All you Need", 2022,
https://arxiv.org/abs/2205.14986). Official code: https://github.com/Sara-Ahmed/GMML at 1882712 (GPL: read to
understand the method; nothing is copied).

`GmmlForPreTraining` (official `FullpiplineSiT` + the loss in `main.py::train_one_epoch`):
- the input is corrupted by group masking (`layers.group_masking`: groups of connected pixels/patches replaced by
  noise, zeros, same-image blocks or another image's pixels), unless the corruption is given explicitly;
- the ViT encodes ALL tokens of the corrupted image (no mask token, no visible-only path);
- the outputs of the blocks `recons_blocks` (1-based, official "6-8-10-12") are averaged, normalised by the final
  LayerNorm, and the patch tokens go through the reconstruction head (official `RECHead`): three Linear+GELU
  layers at the encoder width, then a `ConvTranspose2d(width, channels, kernel=stride=patch)` back to pixels;
- loss: L1 between the reconstruction and the clean image, averaged over every corrupted pixel and channel of the
  batch (official `--drop_only 1`), or over all pixels (`drop_only=False`).
Proven equal to the official model and loss by `tests/models/gmml/test_official_gmml.py`.

The encoder is a `VitModel`: after pre-training `AutoModel.from_pretrained(dir)` gives `GmmlModel` and
`AutoModelForImageClassification.from_pretrained(dir, num_labels=...)` a classifier; the head is left out.

Differences from the official code:
- multi-crop: the official model runs the global crops and (unused by default, `--local_crops_number 0`) local
  crops as two batches and sums their losses; here one forward is one batch of images (call it per crop size);
- with nothing corrupted and `drop_only`, the loss is the mean over all pixels (the official mean of an empty
  selection is NaN);
- other input sizes (`interpolate_pos_encoding=True`) resize the position table with the zoo's bicubic resampling
  (DINO's scale-factor variant in the official code differs slightly) and the head takes the actual patch grid
  (the official head assumes a square one);
- the corruption draws from one `torch.Generator` (same distribution, see `layers/group_masking.py`).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers.group_masking import group_mask_corruption, patch_mask_to_pixel_mask
from ...modeling_utils import check_pixel_values
from ..vit.modeling_vit import VitForImageClassification, VitModel, VitPreTrainedModel
from .configuration_gmml import GmmlConfig


@dataclass
class GmmlForPreTrainingOutput(ModelOutput):
    r"""
    loss: L1 reconstruction loss on the corrupted pixels (all pixels if `drop_only` is False).
    reconstruction: `(batch, channels, height, width)` reconstructed image.
    mask: `(batch, height, width)` bool, True = corrupted pixel.
    corrupted_pixel_values: `(batch, channels, height, width)` the encoder's input.
    hidden_states / attentions: the encoder's (every token of the corrupted image).
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    corrupted_pixel_values: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class GmmlReconstructionHead(nn.Module):
    """Patch tokens `(B, N, D)` -> image `(B, C, H, W)`: three Linear+GELU layers at width D (`mlp.0/2/4`), then a
    transposed convolution with kernel = stride = patch size (`conv_transpose`)."""

    def __init__(self, config: GmmlConfig):
        super().__init__()
        dim = config.hidden_size
        layers = []
        for _ in range(3):
            layers += [nn.Linear(dim, dim), nn.GELU()]
        self.mlp = nn.Sequential(*layers)
        self.conv_transpose = nn.ConvTranspose2d(dim, config.num_channels, kernel_size=config.patch_size,
                                                 stride=config.patch_size)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = self.mlp(tokens).transpose(1, 2)
        return self.conv_transpose(x.unflatten(2, tuple(grid)))


class GmmlPreTrainedModel(VitPreTrainedModel):
    config: GmmlConfig
    config_class = GmmlConfig
    _no_split_modules = ["VitEmbeddings", "TransformerBlock", "GmmlReconstructionHead"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The ViT initialisation (truncated normal linear layers, as the official backbone and head); the
        transposed convolution keeps PyTorch's default (the official head does not re-initialise it)."""
        if isinstance(module, nn.ConvTranspose2d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * module.weight[0, 0].numel()
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        else:
            super()._init_weights(module)


class GmmlModel(GmmlPreTrainedModel, VitModel):
    """The GMML encoder: a `VitModel` (every token encoded)."""


class GmmlForImageClassification(GmmlPreTrainedModel, VitForImageClassification):
    """A `VitForImageClassification` for fine-tuning or linear probing a GMML encoder."""


class GmmlForPreTraining(GmmlPreTrainedModel):
    """GMML pre-training: group-masked corruption, full-sequence ViT, multi-block reconstruction head, L1 loss on
    the corrupted pixels (see the module doc)."""

    def __init__(self, config: GmmlConfig):
        super().__init__(config)
        if config.fc_norm:
            raise ValueError("GMML pre-training normalises the averaged block outputs with the final norm: use "
                             "pooling='cls' and use_fc_norm=False (switch to pooling='mean' when fine-tuning)")
        self.vit = GmmlModel(config, add_pooling_layer=False)
        self.head = GmmlReconstructionHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.patch_embed

    def corrupt(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None):
        """Group-mask a batch with the config's settings (`layers.group_masking.group_mask_corruption`)."""
        config = self.config
        return group_mask_corruption(pixel_values, drop_perc=config.drop_perc, drop_type=config.drop_type,
                                     drop_replace=config.drop_replace, align=config.drop_align,
                                     max_block_size=config.max_block_size, generator=generator)

    def _pixel_mask(self, mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Accept a `(B, H, W)` pixel mask or a `(B, N)` patch mask (bool, True = corrupted); return the pixel one."""
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a bool tensor, True = corrupted: (batch, height, width) per pixel or "
                            "(batch, num_patches) per patch")
        batch, _, height, width = pixel_values.shape
        patch = self.config.patch_size
        grid = (height // patch, width // patch)
        if tuple(mask.shape) == (batch, height, width):
            return mask.to(pixel_values.device)
        if tuple(mask.shape) == (batch, grid[0] * grid[1]):
            return patch_mask_to_pixel_mask(mask, grid, patch).to(pixel_values.device)
        raise ValueError(f"mask must have shape ({batch}, {height}, {width}) (pixels) or ({batch}, "
                         f"{grid[0] * grid[1]}) (patches), got {tuple(mask.shape)}")

    def encode(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False,
               output_attentions: bool | None = None):
        """Run the encoder on every token; returns (the normalised mean of the `recons_blocks` outputs, patch tokens
        only, `(B, N, D)`; the encoder output)."""
        outputs = self.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, output_hidden_states=True,
                           output_attentions=output_attentions, return_dict=True)
        features = 0
        for block in self.config.recons_blocks:  # hidden_states[b] is the output of block b (1-based)
            features = features + outputs.hidden_states[block]
        features = self.vit.layernorm(features / len(self.config.recons_blocks))
        return features[:, self.config.num_prefix_tokens:], outputs

    def forward_loss(self, pixel_values: torch.Tensor, reconstruction: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute error over the corrupted pixels and channels of the batch (`drop_only`), else all pixels;
        all pixels as well when nothing is corrupted."""
        error = F.l1_loss(reconstruction, pixel_values, reduction="none")
        if not self.config.drop_only or not mask.any():
            return error.mean()
        return error[mask.unsqueeze(1).expand_as(error)].mean()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, corrupted_pixel_values: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> GmmlForPreTrainingOutput:
        r"""
        pixel_values: the clean (normalised) images, the reconstruction target.
        corrupted_pixel_values: `(batch, channels, height, width)` the encoder's input; with `mask`, replaces the
            random corruption (both or neither).
        mask: bool, True = corrupted; `(batch, height, width)` per pixel or `(batch, num_patches)` per patch.
        generator: the `torch.Generator` for the random corruption (None: torch's global RNG).
        """
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        check_pixel_values(pixel_values, self.config.num_channels)
        patch = self.config.patch_size
        height, width = pixel_values.shape[-2:]
        if height % patch or width % patch:
            raise ValueError(f"Image size {height}x{width} is not a multiple of the patch size {patch}; GMML "
                             f"reconstructs whole patches (resize or crop the images)")
        if (corrupted_pixel_values is None) != (mask is None):
            raise ValueError("pass both corrupted_pixel_values and mask (an explicit corruption), or neither (random "
                             "group masking)")
        if corrupted_pixel_values is None:
            corruption = self.corrupt(pixel_values, generator)
            corrupted_pixel_values, mask = corruption.corrupted_pixel_values, corruption.mask
        else:
            if generator is not None:
                raise ValueError("a generator is only used for random corruption; it cannot be combined with an "
                                 "explicit corrupted_pixel_values/mask")
            check_pixel_values(corrupted_pixel_values, self.config.num_channels)
            if corrupted_pixel_values.shape != pixel_values.shape:
                raise ValueError(f"corrupted_pixel_values must have the shape of pixel_values "
                                 f"{tuple(pixel_values.shape)}, got {tuple(corrupted_pixel_values.shape)}")
            mask = self._pixel_mask(mask, pixel_values)
        features, outputs = self.encode(corrupted_pixel_values, interpolate_pos_encoding, output_attentions)
        reconstruction = self.head(features, (height // patch, width // patch))
        loss = self.forward_loss(pixel_values, reconstruction, mask)
        return GmmlForPreTrainingOutput(
            loss=loss, reconstruction=reconstruction, mask=mask, corrupted_pixel_values=corrupted_pixel_values,
            hidden_states=outputs.hidden_states if output_hidden_states else None, attentions=outputs.attentions)


__all__ = ["GmmlPreTrainedModel", "GmmlModel", "GmmlForImageClassification", "GmmlForPreTraining",
           "GmmlReconstructionHead", "GmmlForPreTrainingOutput"]
