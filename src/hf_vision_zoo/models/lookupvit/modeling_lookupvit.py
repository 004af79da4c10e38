"""LookupViT: Compressing visual information to a limited number of tokens (Koner, Jain, Jain, Tresp, Paul; ECCV 2024).

Paper: https://arxiv.org/abs/2407.12753. No official code was released; this is the zoo's implementation from the
sources collected in `papers/METHODS.md` section 30 (abstract + secondary summaries). Nothing here was checked
against the paper's own equations, which were not available to us.

What the sources state (implemented as stated):
- two token sets: N high-resolution **lookup** tokens (fine patches) and M << N **compressed** tokens;
- per layer, three steps: (1) *gather*: multi-head cross-attention, compressed tokens as queries over the lookup
  tokens (the lookup->compressed half of the multi-head bidirectional cross-attention, MHBC); (2) *refine*: the
  compressed tokens get full self-attention + MLP (here the zoo's `layers.TransformerBlock`); (3) *scatter*:
  cross-attention the other way, lookup tokens as queries over the refined compressed tokens (MHBC
  compressed->lookup), then a cheaper MLP on the lookup tokens; self-attention runs over M tokens only;
- one trained model can run with several compressed-grid resolutions (`compressed_grid_size` forward argument).

The equations followed (pre-norm residual form, c = compressed, l = lookup, LN = LayerNorm):
    c <- c + W_o Attn(q = LN(c) W_q,  k = LN(l) W_k,  v = LN(l) W_v)          (gather, MHBC l->c)
    c <- TransformerBlock(c)                                                    (refine: MHSA + MLP(mlp_ratio))
    l <- l + W_o' Attn(q/k from the gather scores transposed, v = LN(c) W_v')   (scatter, MHBC c->l)
    l <- l + MLP_l(LN(l))                                                       (hidden = lookup_mlp_ratio * D)

Choices the zoo had to make (sources silent; each is a config option where a reader could choose otherwise):
- **Compressed-token initialisation**: bilinear resize (align_corners=False) of the lookup-token grid, after the
  position embeddings, to the compressed grid. Both unofficial codes (lucidrains `look_vit.py`, an MNIST toy) do
  this; it needs no compressed-position parameters, which is what lets one model run any compressed grid.
- **Attention reuse** (`attention_reuse=True`, default): the scatter step reuses the gather step's query-key scores
  S (M x N), transposed and softmax-normalised over the M compressed tokens, with only a value projection (the
  lucidrains reading, which METHODS.md says to follow until the PDF is read). `False` gives the scatter its own
  W_q/W_k (then both cross-attentions go through the attention backend, SDPA by default).
- **Norms and residuals**: pre-norm, residual on every step, LayerNorm eps from the config, optional LayerScale and
  drop path on every residual branch as in the zoo ViT.
- **Lookup MLP width** `lookup_mlp_ratio=0.5` and default grid 5x5 at ViT-B/16 (N = 196, M = 25): the only number
  the sources give is "about 2x fewer FLOPs than ViT"; with these two defaults the cost model below gives 2.07x
  fewer FLOPs than the zoo ViT-B/16 (1.74x with `attention_reuse=False`). Both are guesses tuned to that claim,
  not the paper's published settings (not found).
- **Readout**: LayerNorm on each token set, mean of each, summed (the lucidrains reading; the paper's pooling was
  not found). `last_hidden_state` is the normalised lookup tokens (N, the patch grid) and `hidden_states` the
  lookup tokens after each layer; the compressed tokens are returned as `compressed_last_hidden_state` and
  `compressed_hidden_states`.
- `attentions` are the compressed tokens' self-attention maps (M x M); `gather_attentions` (M x N) and
  `scatter_attentions` (N x M) are the two MHBC maps.
- No [CLS]/register tokens: they would have to belong to one of the two sets, which the sources do not settle.

Cost model (multiply-adds x 2, i.e. what `torch.utils.flop_counter` counts; `estimate_flops` computes it), per
layer with width D, attention over M compressed tokens, N lookup tokens, MLP hidden H_c = mlp_ratio*D and
H_l = lookup_mlp_ratio*D:
    gather   2MD^2 (q) + 4ND^2 (k, v) + 4MND (scores, weighted sum) + 2MD^2 (out)
    refine   8MD^2 + 4M^2D + 4MDH_c
    scatter  (reuse) 2MD^2 (v) + 2NMD + 2ND^2  |  (no reuse) 2ND^2 + 4MD^2 + 4NMD + 2ND^2
    lookup   4NDH_l
versus 8ND^2 + 4N^2D + 4NDH_c for a ViT layer; `tests/models/lookupvit` checks the measured FLOPs equal this.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, Mlp, TransformerBlock, get_attention_function
from ...layers.transformer import LayerScale
from ...layers.vit_block_settings import drop_path_rates, vit_block_kwargs
from ...modeling_utils import check_pixel_values, image_classifier_output
from ..vit.modeling_vit import VitEmbeddings, VitPreTrainedModel
from .configuration_lookupvit import LookupVitConfig, check_compressed_grid, to_grid


@dataclass
class LookupVitModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, N, hidden_size)` normalised lookup tokens (the patch grid, row-major).
    pooler_output: `(batch, hidden_size)`: mean of the normalised compressed tokens + mean of the normalised lookup
        tokens.
    hidden_states: the lookup tokens after the embedding and after every layer, `(batch, N, hidden_size)`.
    attentions: every layer's compressed self-attention, `(batch, heads, M, M)`.
    compressed_last_hidden_state: `(batch, M, hidden_size)` normalised compressed tokens.
    compressed_hidden_states: the compressed tokens at the start and after every layer.
    gather_attentions: every layer's compressed <- lookup cross-attention, `(batch, heads, M, N)`.
    scatter_attentions: every layer's lookup <- compressed cross-attention, `(batch, heads, N, M)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    compressed_last_hidden_state: torch.FloatTensor | None = None
    compressed_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    gather_attentions: tuple[torch.FloatTensor, ...] | None = None
    scatter_attentions: tuple[torch.FloatTensor, ...] | None = None


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch, tokens, dim = x.shape
    return x.reshape(batch, tokens, num_heads, dim // num_heads).transpose(1, 2)


class _CrossAttentionStep(GradientCheckpointingLayer):
    """Shared parts of the two MHBC halves: head layout, output projection, residual scaling."""

    def __init__(self, config: LookupVitConfig, drop_path: float):
        super().__init__()
        dim = config.hidden_size
        self.config = config
        self.num_heads = config.num_attention_heads
        self.scaling = (dim // self.num_heads) ** -0.5
        self.is_causal = False
        self.attention_dropout = config.attention_probs_dropout_prob
        self.proj = nn.Linear(dim, dim)
        self.ls = LayerScale(dim, config.layer_scale_init_value) if config.layer_scale_init_value else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def attend(self, query, key, value, output_attentions):
        """Backend attention on `(B, h, T, d)` tensors -> `(B, T, D)` and the probabilities."""
        attention = get_attention_function(self.config, output_attentions)
        out, probs = attention(self, query, key, value, None, scaling=self.scaling,
                               dropout=self.attention_dropout if self.training else 0.0)
        return out.flatten(2), probs

    def weighted_sum(self, probs, value):
        probs = F.dropout(probs, p=self.attention_dropout, training=self.training)
        return torch.matmul(probs, value).transpose(1, 2).flatten(2)

    def residual(self, tokens, out):
        return tokens + self.drop_path(self.ls(self.dropout(self.proj(out))))


class LookupVitGather(_CrossAttentionStep):
    """MHBC lookup -> compressed: the compressed tokens (queries) gather from the lookup tokens (keys/values)."""

    def __init__(self, config: LookupVitConfig, drop_path: float = 0.0):
        super().__init__(config, drop_path)
        dim = config.hidden_size
        self.norm_compressed = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.norm_lookup = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.q = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=config.qkv_bias)

    def forward(self, compressed: torch.Tensor, lookup: torch.Tensor, output_attentions: bool = False):
        """Returns the updated compressed tokens, the scores `(B, h, M, N)` (kept for the scatter step when
        `attention_reuse`, else None) and the attention probabilities (if asked)."""
        query = _split_heads(self.q(self.norm_compressed(compressed)), self.num_heads)
        key, value = (_split_heads(t, self.num_heads) for t in self.kv(self.norm_lookup(lookup)).chunk(2, dim=-1))
        if self.config.attention_reuse:  # the scores are needed again (transposed) by the scatter step
            scores = torch.matmul(query * self.scaling, key.transpose(-2, -1))
            probs = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
            out = self.weighted_sum(probs, value)
        else:
            scores = None
            out, probs = self.attend(query, key, value, output_attentions)
        return self.residual(compressed, out), scores, (probs if output_attentions else None)


class LookupVitScatter(_CrossAttentionStep):
    """MHBC compressed -> lookup: the lookup tokens (queries) read the refined compressed tokens, then the lookup
    tokens' narrow MLP."""

    def __init__(self, config: LookupVitConfig, drop_path: float = 0.0):
        super().__init__(config, drop_path)
        dim = config.hidden_size
        self.norm_compressed = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        if config.attention_reuse:
            self.v = nn.Linear(dim, dim, bias=config.qkv_bias)
        else:
            self.norm_lookup = nn.LayerNorm(dim, eps=config.layer_norm_eps)
            self.q = nn.Linear(dim, dim, bias=config.qkv_bias)
            self.kv = nn.Linear(dim, 2 * dim, bias=config.qkv_bias)
        self.norm_mlp = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.lookup_mlp_ratio), hidden_act=config.hidden_act,
                       dropout=config.hidden_dropout_prob)
        self.ls_mlp = LayerScale(dim, config.layer_scale_init_value) if config.layer_scale_init_value else nn.Identity()

    def forward(self, lookup: torch.Tensor, compressed: torch.Tensor, scores: torch.Tensor | None = None,
                output_attentions: bool = False):
        normed = self.norm_compressed(compressed)
        if self.config.attention_reuse:
            if scores is None:
                raise ValueError("attention_reuse needs the gather step's scores")
            value = _split_heads(self.v(normed), self.num_heads)
            probs = scores.transpose(-2, -1).softmax(dim=-1, dtype=torch.float32).to(value.dtype)  # over M
            out = self.weighted_sum(probs, value)
        else:
            query = _split_heads(self.q(self.norm_lookup(lookup)), self.num_heads)
            key, value = (_split_heads(t, self.num_heads) for t in self.kv(normed).chunk(2, dim=-1))
            out, probs = self.attend(query, key, value, output_attentions)
        lookup = self.residual(lookup, out)
        lookup = lookup + self.drop_path(self.ls_mlp(self.mlp(self.norm_mlp(lookup))))
        return lookup, (probs if output_attentions else None)


class LookupVitLayer(nn.Module):
    """One LookupViT block: gather, refine (a full ViT block on the compressed tokens), scatter. Each step is its
    own gradient-checkpointing unit."""

    def __init__(self, config: LookupVitConfig, drop_path: float = 0.0):
        super().__init__()
        self.gather = LookupVitGather(config, drop_path)
        self.refine = TransformerBlock(config, config.hidden_size, config.num_attention_heads, drop_path=drop_path,
                                       **vit_block_kwargs(config))
        self.scatter = LookupVitScatter(config, drop_path)

    def forward(self, compressed: torch.Tensor, lookup: torch.Tensor, output_attentions: bool = False):
        compressed, scores, gather_probs = self.gather(compressed, lookup, output_attentions)
        compressed, self_probs = self.refine(compressed, None, output_attentions)
        lookup, scatter_probs = self.scatter(lookup, compressed, scores, output_attentions)
        return compressed, lookup, (self_probs, gather_probs, scatter_probs)


class LookupVitPreTrainedModel(VitPreTrainedModel):
    config: LookupVitConfig
    base_model_prefix = "lookupvit"
    _no_split_modules = ["VitEmbeddings", "LookupVitLayer"]


class LookupVitModel(LookupVitPreTrainedModel):
    """The LookupViT encoder: ViT patch embeddings (the lookup tokens), compressed tokens by bilinear resizing, L
    LookupViT layers, a LayerNorm per token set and mean pooling of both."""

    def __init__(self, config: LookupVitConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = VitEmbeddings(config)
        self.layers = nn.ModuleList(LookupVitLayer(config, rate)
                                    for rate in drop_path_rates(config.drop_path_rate, config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.compressed_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    def compress(self, lookup: torch.Tensor, grid: tuple[int, int], compressed_grid: tuple[int, int]) -> torch.Tensor:
        """The initial compressed tokens: the `(B, N, C)` lookup grid bilinearly resized to `compressed_grid`."""
        batch, _, dim = lookup.shape
        image = lookup.transpose(1, 2).reshape(batch, dim, grid[0], grid[1])
        resized = F.interpolate(image, size=compressed_grid, mode="bilinear", align_corners=False)
        return resized.flatten(2).transpose(1, 2)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None,
                compressed_grid_size: int | tuple[int, int] | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> LookupVitModelOutput:
        r"""
        compressed_grid_size: run with another compressed grid than `config.compressed_grid_size` (multi-resolution
            inference); it must be smaller than the input's patch grid.
        interpolate_pos_encoding: resize the position table to the input's patch grid.
        """
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        compressed_grid = to_grid(self.config.compressed_grid_size if compressed_grid_size is None
                                  else compressed_grid_size)
        _, lookup, grid = self.embeddings(pixel_values, None, interpolate_pos_encoding)
        check_compressed_grid(compressed_grid, grid)
        lookup = self.embeddings.dropout(lookup)
        compressed = self.compress(lookup, grid, compressed_grid)
        hidden, compressed_hidden = ([lookup], [compressed]) if output_hidden_states else (None, None)
        maps = ([], [], []) if output_attentions else None
        for layer in self.layers:
            compressed, lookup, probs = layer(compressed, lookup, output_attentions)
            if output_hidden_states:
                hidden.append(lookup)
                compressed_hidden.append(compressed)
            if output_attentions:
                for store, p in zip(maps, probs):
                    store.append(p)
        lookup_out = self.layernorm(lookup)
        compressed_out = self.compressed_layernorm(compressed)
        return LookupVitModelOutput(
            last_hidden_state=lookup_out, pooler_output=compressed_out.mean(1) + lookup_out.mean(1),
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(maps[0]) if output_attentions else None,
            compressed_last_hidden_state=compressed_out,
            compressed_hidden_states=tuple(compressed_hidden) if output_hidden_states else None,
            gather_attentions=tuple(maps[1]) if output_attentions else None,
            scatter_attentions=tuple(maps[2]) if output_attentions else None,
        )


class LookupVitForImageClassification(LookupVitPreTrainedModel):
    """LookupViT with a linear classifier on the pooled features."""

    def __init__(self, config: LookupVitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.lookupvit = LookupVitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                compressed_grid_size: int | tuple[int, int] | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs):
        outputs = self.lookupvit(pixel_values, compressed_grid_size=compressed_grid_size,
                                 interpolate_pos_encoding=interpolate_pos_encoding,
                                 output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                                 return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        return image_classifier_output(self, logits, labels, outputs, **kwargs)


def estimate_flops(config: LookupVitConfig, image_size: int | tuple[int, int] | None = None,
                   compressed_grid_size: int | tuple[int, int] | None = None, with_classifier: bool = False) -> int:
    """FLOPs (2 x multiply-adds of every matmul/conv, the `torch.utils.flop_counter` convention) of one image
    through `LookupVitModel` (plus the classifier), from the cost model in the module docstring."""
    size = to_grid(config.image_size if image_size is None else image_size)
    patch = config.patch_size
    grid = (-(-size[0] // patch), -(-size[1] // patch))
    compressed = to_grid(config.compressed_grid_size if compressed_grid_size is None else compressed_grid_size)
    n, m, d = grid[0] * grid[1], compressed[0] * compressed[1], config.hidden_size
    h_c, h_l = int(d * config.mlp_ratio), int(d * config.lookup_mlp_ratio)
    gather = 2 * m * d * d + 4 * n * d * d + 4 * m * n * d + 2 * m * d * d
    refine = 8 * m * d * d + 4 * m * m * d + 4 * m * d * h_c
    if config.attention_reuse:
        scatter = 2 * m * d * d + 2 * n * m * d + 2 * n * d * d
    else:
        scatter = 2 * n * d * d + 4 * m * d * d + 4 * n * m * d + 2 * n * d * d
    lookup_mlp = 4 * n * d * h_l
    embed = 2 * n * d * config.num_channels * patch * patch
    head = 2 * d * config.num_labels if with_classifier and config.num_labels > 0 else 0
    return embed + config.num_hidden_layers * (gather + refine + scatter + lookup_mlp) + head


def estimate_vit_flops(config, image_size: int | tuple[int, int] | None = None, with_classifier: bool = False) -> int:
    """The same count for a plain zoo ViT (`VitConfig`): `8ND^2 + 4N^2D + 4NDH` per layer (N with prefix tokens)."""
    size = to_grid(config.image_size if image_size is None else image_size)
    patch = config.patch_size
    n_patch = -(-size[0] // patch) * -(-size[1] // patch)
    n, d, h = n_patch + config.num_prefix_tokens, config.hidden_size, int(config.hidden_size * config.mlp_ratio)
    layer = 8 * n * d * d + 4 * n * n * d + 4 * n * d * h
    head = 2 * d * config.num_labels if with_classifier and config.num_labels > 0 else 0
    return 2 * n_patch * d * config.num_channels * patch * patch + config.num_hidden_layers * layer + head


__all__ = ["LookupVitPreTrainedModel", "LookupVitModel", "LookupVitForImageClassification", "LookupVitModelOutput",
           "LookupVitLayer", "LookupVitGather", "LookupVitScatter", "estimate_flops", "estimate_vit_flops"]
