"""Multi-Dimensional Hyena for Spatial Inductive Bias (Zimerman & Wolf, AISTATS 2024).

Paper: https://arxiv.org/abs/2309.13600 - official code: https://github.com/Itamarzimm/HyenaND (Apache-2.0), a DeiT
code base whose vendored timm `vision_transformer.Block` picks its token mixer from `--method`.

The network is the official DeiT-style ViT: patch embedding and learned absolute positions (the zoo ViT's
`VitEmbeddings`), pre-norm blocks whose token mixer is either the 2-D Hyena operator (`layers.HyenaOperator2d`, in
`HyenaNdBlock`) or multi-head self-attention (`layers.TransformerBlock`) following `config.mixer_pattern`, a final
LayerNorm and a linear classifier. With `directional_mode="seq"` every even block runs its long convolution on the
flipped grid. Proven equal to the official code by `tests/models/hyena_nd/test_parity_hyena_nd.py` (fixtures made by
`tests/fixtures/make_hyena_nd_official_fixture.py`).

Differences from the official code, none of which changes the output at the configured `image_size`:
- another input size needs `interpolate_pos_encoding=True`: the position table is resized bicubically (as the zoo
  ViT does) and each Hyena filter is evaluated on the new grid (its positional embedding resampled linearly, see
  `layers.hyena`); the official code accepts only the square grid it was built for;
- the official classifier reads token 0 even without a class token (`forward_features` returns `x[:, 0]`, i.e. the
  top-left patch); that is `global_pool="token"`, the default. `global_pool="avg"` averages the tokens instead
  (what the catalog's summary assumed);
- attention blocks run through transformers' attention interface (SDPA by default); Hyena blocks have no attention
  map, so `attentions` holds None for them;
- `optim_hints()` exposes the official per-parameter optimiser settings, which the zoo's trainer honours (the
  official training script builds its optimiser with timm 0.4.12, which ignores them; see `HyenaNdConfig`).
"""

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, Mlp, TransformerBlock
from ...layers.hyena import (
    HyenaFilter2d,
    HyenaModulation2d,
    HyenaOperator2d,
    HyenaPositionalEmbedding,
    Sin,
    hyena_positional_embedding,
)
from ...modeling_utils import PooledLinearClassifierMixin, ZooPreTrainedModel, check_pixel_values, init_common_weights
from ..vit.configuration_vit import VitConfig
from ..vit.modeling_vit import VitEmbeddings
from .configuration_hyena_nd import HyenaNdConfig


class HyenaNdBlock(GradientCheckpointingLayer):
    """Pre-norm block with the 2-D Hyena mixer: `x + DropPath(Hyena(LN(x)))`, then `x + DropPath(MLP(LN(x)))` (the
    official `Block` with `method="hyena2d"`; no LayerScale)."""

    def __init__(self, config: HyenaNdConfig, directional_mode: str, drop_path: float = 0.0):
        super().__init__()
        dim = config.hidden_size
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mixer = HyenaOperator2d(
            dim, config.grid_size, order=config.hyena_order, filter_order=config.filter_order,
            filter_emb_dim=config.filter_emb_dim, filter_num_inner_mlps=config.filter_num_inner_mlps,
            filter_sin_freq=config.filter_sin_freq, fast_decay_pct=config.fast_decay_pct,
            slow_decay_pct=config.slow_decay_pct, decay_target=config.decay_target, sqrt_decay=config.sqrt_decay,
            directional_mode=directional_mode, short_filter_size=config.short_filter_size,
            dropout=config.hidden_dropout_prob, filter_lr=config.filter_lr,
            filter_weight_decay=config.filter_weight_decay, pos_emb_lr=config.pos_emb_lr)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), hidden_act=config.hidden_act,
                       dropout=config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, grid_size: tuple[int, int],
                interpolate: bool = False) -> torch.Tensor:
        """`hidden_states`: `(B, H * W, C)` patch tokens in row-major order of the `grid_size` grid."""
        mixed = self.mixer(self.norm1(hidden_states), grid_size, interpolate=interpolate)
        hidden_states = hidden_states + self.drop_path(mixed)
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


class HyenaNdPreTrainedModel(ZooPreTrainedModel):
    config: HyenaNdConfig
    base_model_prefix = "hyena_nd"
    _no_split_modules = ["VitEmbeddings", "HyenaNdBlock", "TransformerBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation (timm 0.4.12 `_init_vit_weights`): truncated normal std `initializer_range`
        for every linear weight (filter MLP and classifier included) and the position table, zero biases, unit
        LayerNorms, PyTorch's default for convolutions; Hyena's own: `N(0, 1)` filter skip weights, sine
        frequencies `filter_sin_freq`, the deterministic positional embedding; buffers rebuilt from the config."""
        std = self.config.initializer_range
        if init_common_weights(module, std):
            return
        if isinstance(module, nn.Conv2d):  # nn.Conv2d.reset_parameters
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, VitEmbeddings):
            init.trunc_normal_(module.position_embeddings, std=std)
            if module.cls_token is not None:
                init.trunc_normal_(module.cls_token, std=std)
        elif isinstance(module, HyenaFilter2d):
            init.normal_(module.bias, std=1.0)
        elif isinstance(module, HyenaPositionalEmbedding):  # its own branch: `t` must be rebuilt even when z loads
            z, t = hyena_positional_embedding(module.seq_len, module.emb_dim)
            init.copy_(module.z, z)
            init.copy_(module.t, t)
        elif isinstance(module, Sin):
            init.constant_(module.freq, module.w)
        elif isinstance(module, HyenaModulation2d):
            init.copy_(module.deltas, module.default_deltas())

    def optim_hints(self) -> dict[str, dict[str, float]]:
        """Per-parameter optimiser settings `{name: {"lr", "weight_decay"}}` of every Hyena mixer (empty when
        `config.use_optim_hints` is False); `training.optim.param_groups` applies them."""
        if not self.config.use_optim_hints:
            return {}
        return {f"{prefix}.{name}": hint for prefix, module in self.named_modules()
                if isinstance(module, HyenaOperator2d) for name, hint in module.optim_hints().items()}


def _vit_embedding_config(config: HyenaNdConfig) -> VitConfig:
    """The zoo ViT config describing the same patch embedding and position table."""
    return VitConfig(image_size=config.image_size, patch_size=config.patch_size, num_channels=config.num_channels,
                     hidden_size=config.hidden_size, num_hidden_layers=1, num_attention_heads=1,
                     class_token=config.use_cls_token, pooling="cls" if config.use_cls_token else "mean",
                     hidden_dropout_prob=config.hidden_dropout_prob)


class HyenaNdModel(HyenaNdPreTrainedModel):
    """The Hyena N-D encoder: returns the normalised tokens and the pooled feature (`config.global_pool`)."""

    def __init__(self, config: HyenaNdConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = VitEmbeddings(_vit_embedding_config(config))
        rates = [config.drop_path_rate * i / max(config.num_hidden_layers - 1, 1)
                 for i in range(config.num_hidden_layers)]
        blocks = []
        for rate, mixer, direction in zip(rates, config.block_mixers(), config.block_directions()):
            if mixer == "hyena":
                blocks.append(HyenaNdBlock(config, direction, rate))
            else:
                blocks.append(TransformerBlock(
                    config, config.hidden_size, config.num_attention_heads, mlp_ratio=config.mlp_ratio,
                    qkv_bias=config.qkv_bias, drop_path=rate, layer_norm_eps=config.layer_norm_eps,
                    hidden_act=config.hidden_act, attention_dropout=config.attention_probs_dropout_prob,
                    dropout=config.hidden_dropout_prob))
        self.blocks = nn.ModuleList(blocks)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> BaseModelOutputWithPooling:
        r"""
        interpolate_pos_encoding: accept another input size: resize the position table and evaluate the Hyena
            filters on the input's patch grid.
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        prefix, tokens, grid = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        hidden = self.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        all_hidden = [hidden] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for block in self.blocks:
            probs = None
            if isinstance(block, HyenaNdBlock):
                hidden = block(hidden, grid, interpolate_pos_encoding)
            else:
                hidden, probs = block(hidden, None, output_attentions)
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                attentions.append(probs)
        sequence = self.layernorm(hidden)
        pooled = None
        if self.add_pooling_layer:
            pooled = sequence[:, 0] if self.config.global_pool == "token" else sequence.mean(dim=1)
        return BaseModelOutputWithPooling(
            last_hidden_state=sequence, pooler_output=pooled,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class HyenaNdForImageClassification(PooledLinearClassifierMixin, HyenaNdPreTrainedModel):
    """Hyena N-D with a linear classifier on the pooled feature (the official `head`)."""

    def __init__(self, config: HyenaNdConfig):
        super().__init__(config)
        self.add_pooled_classifier(HyenaNdModel(config), config.hidden_size)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> ImageClassifierOutput:
        return self.classify_pooled(pixel_values, labels, kwargs, interpolate_pos_encoding=interpolate_pos_encoding,
                                    output_hidden_states=output_hidden_states, output_attentions=output_attentions)


__all__ = ["HyenaNdPreTrainedModel", "HyenaNdModel", "HyenaNdForImageClassification", "HyenaNdBlock"]
