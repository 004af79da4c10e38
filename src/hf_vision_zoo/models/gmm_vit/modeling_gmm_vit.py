"""GMM-ViT: "Toward a Deeper Understanding: RetNet Viewed through Convolution" (Li et al., Pattern Recognition 2024,
https://arxiv.org/abs/2309.05375); official code https://github.com/CatworldLee/Gaussian-Mixture-Mask-Attention
(read at b06b199, no licence: nothing copied).

The zoo ViT (`models.vit`: embeddings, `layers.TransformerBlock`s, final norm / fc_norm pooling) whose block
attentions are `layers.gaussian_mixture_mask.MaskedSelfAttention`: the scaled scores are multiplied element-wise by
a Gaussian mixture mask (GMM) or an element-wise learnable mask (ELM) before the softmax (`config.attention_mask_type`;
"none" gives the plain ViT). Proven equal to the official `models/vit.py` (GMM and ELM) by
`tests/models/gmm_vit/test_parity_gmm_vit.py` on a stored fixture.

Differences from the official code:
- masked attention is always computed explicitly (eager), also when SDPA is selected: a multiplicative mask needs the
  score matrix (see `layers.gaussian_mixture_mask`); with attention_mask_type "none" the attention backend is used;
- the masks are tied to the configured patch grid: other input sizes (and MAE-style token removal) raise a
  ValueError when a mask is used;
- stochastic depth decays linearly over depth (zoo ViT) where the official code uses one rate for every block
  (training only);
- the patch embedding is a strided conv (the official rearrange + Linear, converted exactly).
"""

import torch
from transformers import initialization as init
from transformers.utils.generic import can_return_tuple

from ...layers.gaussian_mixture_mask import (
    ElementwiseLearnableMask,
    GaussianMixtureMask,
    MaskedSelfAttention,
    build_attention_score_mask,
    gaussian_kernel_levels,
)
from ...modeling_utils import image_classifier_output
from ..vit.modeling_vit import VitForImageClassification, VitModel, VitModelOutput, VitPreTrainedModel
from .configuration_gmm_vit import GmmVitConfig


def build_masked_attention(config: GmmVitConfig) -> MaskedSelfAttention:
    """One block's attention with the configured score mask (same `qkv`/`proj` layout as the plain ViT block)."""
    score_mask = build_attention_score_mask(
        config.attention_mask_type, config.num_attention_heads, config.grid_size, config.num_prefix_tokens,
        num_kernels=config.num_kernels, sigma_init_mean=config.gmm_sigma_init_mean,
        sigma_init_std=config.gmm_sigma_init_std, alpha_init_std=config.gmm_alpha_init_std,
        elm_init_value=config.elm_init_value)
    return MaskedSelfAttention(config, config.hidden_size, config.num_attention_heads, score_mask,
                               qkv_bias=config.qkv_bias, attention_dropout=config.attention_probs_dropout_prob,
                               proj_dropout=config.hidden_dropout_prob)


class GmmVitPreTrainedModel(VitPreTrainedModel):
    config: GmmVitConfig
    base_model_prefix = "vit"

    @torch.no_grad()
    def _init_weights(self, module):
        """The zoo ViT's initialisation plus the official mask initialisation (GMM sigma ~ N(10, 10^2),
        alpha ~ N(0, 2^2); ELM constant); the GMM's distance kernel buffers are rebuilt from the grid."""
        super()._init_weights(module)
        if isinstance(module, GaussianMixtureMask):
            init.normal_(module.sigma, mean=module.sigma_init_mean, std=module.sigma_init_std)
            init.normal_(module.alpha, mean=0.0, std=module.alpha_init_std)
            levels, index = gaussian_kernel_levels(module.grid_size)
            init.copy_(module.kernel_levels, levels)
            init.copy_(module.kernel_index, index)
        elif isinstance(module, ElementwiseLearnableMask):
            init.constant_(module.mask, module.init_value)


class GmmVitModel(GmmVitPreTrainedModel, VitModel):
    """The ViT encoder with the configured multiplicative attention mask in every block."""

    def __init__(self, config: GmmVitConfig, add_pooling_layer: bool = True):
        VitModel.__init__(self, config, add_pooling_layer=add_pooling_layer)

    def build_block(self, config: GmmVitConfig, index: int, drop_path: float, attention=None):
        if config.attention_mask_type != "none":
            attention = build_masked_attention(config)
        return super().build_block(config, index, drop_path, attention=attention)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, bool_masked_pos: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> VitModelOutput:
        r"""
        bool_masked_pos: `(batch, num_patches)` bool; those patch embeddings become the mask token.
        interpolate_pos_encoding: resize the position table (only without an attention mask: the masks are built
            for the configured patch grid).
        Token removal (`noise`, `mask_ratio`, `mask`) is accepted only when `attention_mask_type` is "none".
        """
        if self.config.attention_mask_type != "none":
            removal = [name for name in ("noise", "mask_ratio", "mask") if kwargs.get(name) is not None]
            if removal:
                raise ValueError(f"{', '.join(removal)}: token removal is not supported with the "
                                 f"{self.config.attention_mask_type!r} attention mask (it covers the full patch grid)")
            if isinstance(pixel_values, torch.Tensor) and pixel_values.ndim == 4:
                size = tuple(pixel_values.shape[-2:])
                if size != tuple(self.config.image_size_2d):
                    raise ValueError(
                        f"Input image size {size[0]}x{size[1]} doesn't match image_size "
                        f"{self.config.image_size_2d[0]}x{self.config.image_size_2d[1]}: the "
                        f"{self.config.attention_mask_type!r} attention mask is built for the "
                        f"{self.config.grid_size[0]}x{self.config.grid_size[1]} patch grid (patch_size "
                        f"{self.config.patch_size}); resize the images (e.g. with the model's image processor)"
                    )
        return VitModel.forward(self, pixel_values, bool_masked_pos=bool_masked_pos,
                                interpolate_pos_encoding=interpolate_pos_encoding,
                                output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                                return_dict=True, **kwargs)


class GmmVitForImageClassification(GmmVitPreTrainedModel, VitForImageClassification):
    """GMM-ViT with a linear classifier on the pooled features (the official `mlp_head` = fc_norm + classifier
    with a mask, final norm on [CLS] + classifier without)."""

    def __init__(self, config: GmmVitConfig):
        GmmVitPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.vit = GmmVitModel(config, add_pooling_layer=False)
        self.classifier = (torch.nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0
                           else torch.nn.Identity())
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                bool_masked_pos: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs):
        outputs = self.vit(pixel_values, bool_masked_pos=bool_masked_pos,
                           interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           return_dict=True)
        return image_classifier_output(self, self.classifier(outputs.pooler_output), labels, outputs, **kwargs)


__all__ = ["GmmVitPreTrainedModel", "GmmVitModel", "GmmVitForImageClassification", "build_masked_attention"]
