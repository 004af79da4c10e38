"""Sparsifiner: Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers (Wei et al., CVPR 2023).

Paper: https://arxiv.org/abs/2303.13755 - official code: https://github.com/lim142857/Sparsifiner (MIT), reference
commit 9a11e26, `src/models/sparsifiner.py` (read, not copied).

A DeiT/ViT whose every attention layer has a lightweight connectivity predictor (`SparsifinerMaskPredictor`):
1. reduced queries/keys `q' = q W_q`, `k' = k W_k` (head_dim -> head_dim / reduce_c_factor, shared by the heads);
2. a low-rank (Linformer-style) approximate attention: keys are projected to `r = N // reduce_n_factor` basis
   tokens, `A = softmax(q' (k'^T P_n) * num_heads^-1/2)` gives each patch query `r` basis coefficients (the official
   scale is `num_heads ** -0.5`, kept as is), of which the top `basis_coef_topk` are kept;
3. the approximate attention over the N tokens is `A_sparse B`, with the basis `B = |P_back^T|` thresholded at
   `basis_threshold`;
4. each patch query keeps its `k = ceil(attn_keep_rate * N)` best-scoring keys (the binary connectivity mask, one per
   head and query); the [CLS] query stays dense.

Two execution paths with the same math (`config.attention_path`):
- "masked": the official one, dense `q k^T` with the unselected keys set to `-inf` (training; parity with the
  official code);
- "sparse": each patch query attends to its k selected keys only and the predictor's `A_sparse B` uses only the
  kept basis rows, so attention costs `O(N k d)` instead of `O(N^2 d)`. Kernels (`layers.sparse_attention`): on CPU
  fp32/fp64 the scores are one sampled CSR product (block-diagonal over batch and heads) and the value and basis
  products weighted row sums, faster than dense SDPA at the paper's keep rates; other dtypes/devices gather the keys.
"auto" (default) uses masked in training and sparse in eval; the two agree to float rounding (tests).

Training (official `losses.py`): in the attention-reconstruction stage (`attention_reconstruction=True`, training
mode) attention is dense and the raw approximation `A B` is fitted to a dense teacher's attention
(`attention_reconstruction_loss`); later stages distil the teacher's logits and tokens (`distillation_loss`) with the
sparse attention. The classifier adds the teacher-free attention self-distillation loss (official `ATTN_SELF_DISTILL`,
approximation vs the model's own dense attention) weighted by `attention_distillation_weight`.

Differences from the official code:
- token pruning (official `TOKEN_PRUNING_LOC`, empty in the published Sparsifiner-S config) is not implemented;
- the threshold variant of the connectivity (`ATTN_SCORE.USE_TOPK=False`) is not implemented (the paper uses top-k);
- other input sizes: with `interpolate_pos_encoding=True` the patch rows of `proj_n`/`proj_back_n` are resampled
  bicubically like the position table and `k = ceil(rate * N')` (the official model only runs at its training size);
- near-ties of the approximate scores (|diff| ~ 1e-7) can select a different key in the two paths, since their
  float summation orders differ.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils.generic import can_return_tuple

from ...layers import TransformerBlock, get_attention_function
from ...layers.position_embedding import resample_position_embeddings
from ...layers.vit_block_settings import vit_block_kwargs
from ...layers.sparse_attention import (
    row_sparse_matmul,
    scatter_probabilities,
    topk_indices,
    topk_sparse_attention,
)
from ...modeling_utils import check_pixel_values, image_classifier_output
from ..vit.modeling_vit import VitModel, VitModelOutput, VitPreTrainedModel
from .configuration_sparsifiner import SparsifinerConfig


@dataclass
class SparsifinerModelOutput(VitModelOutput):
    r"""
    attention_distillation_loss: in training (not reconstruction), the official attention self-distillation loss:
        mean over blocks of `sum((approx - dense_attention[:, :, 1:]) ** 2)`.
    key_indices: per block `(batch, heads, N - 1, k)`, the keys each patch query attends to (unordered).
    connectivity_masks: per block `(batch, heads, N, N)` bool, the official `attn_mask` ([CLS] row all True).
    approximate_attentions: per block `(batch, heads, N - 1, N)`, the predictor's low-rank approximation.
    basis_coefficients: per block `(batch, heads, N - 1, rank)`, the (top-k) basis coefficients.
    attention_sparsity: fraction of zeros in the connectivity masks, averaged over blocks (official
        `attn_mask_sparsity`).
    """

    attention_distillation_loss: torch.FloatTensor | None = None
    key_indices: tuple[torch.LongTensor, ...] | None = None
    connectivity_masks: tuple[torch.BoolTensor, ...] | None = None
    approximate_attentions: tuple[torch.FloatTensor, ...] | None = None
    basis_coefficients: tuple[torch.FloatTensor, ...] | None = None
    attention_sparsity: torch.FloatTensor | None = None


@dataclass
class SparsifinerImageClassifierOutput(ImageClassifierOutput):
    r"""`ImageClassifierOutput` plus the predictor outputs of `SparsifinerModelOutput` (see there)."""

    attention_distillation_loss: torch.FloatTensor | None = None
    key_indices: tuple[torch.LongTensor, ...] | None = None
    connectivity_masks: tuple[torch.BoolTensor, ...] | None = None
    approximate_attentions: tuple[torch.FloatTensor, ...] | None = None
    basis_coefficients: tuple[torch.FloatTensor, ...] | None = None
    attention_sparsity: torch.FloatTensor | None = None


_PREDICTOR_FIELDS = ("key_indices", "connectivity_masks", "approximate_attentions", "basis_coefficients",
                     "attention_sparsity", "attention_distillation_loss")


def _threshold(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """`nn.Threshold(threshold, 0)`: keep values strictly above `threshold`, zero the rest."""
    return torch.where(x > threshold, x, torch.zeros((), dtype=x.dtype, device=x.device))


class SparsifinerMaskPredictor(nn.Module):
    """The low-rank connectivity predictor (official `MaskPredictor`); see the module docstring for the equations."""

    def __init__(self, config: SparsifinerConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.scaling = self.num_heads**-0.5  # official: qk_scale or num_heads ** -0.5
        self.proj_c_q = nn.Linear(config.head_dim, config.channel_rank)
        self.proj_c_k = nn.Linear(config.head_dim, config.channel_rank)
        self.proj_n = nn.Parameter(torch.zeros(config.num_tokens, config.token_rank))
        if not config.share_inout_proj:
            self.proj_back_n = nn.Parameter(torch.zeros(config.num_tokens, config.token_rank))

    def token_projection(self, name: str, grid: tuple[int, int]) -> torch.Tensor:
        """`proj_n` / `proj_back_n` `(N, rank)` for a patch grid; other grids resample the patch rows bicubically."""
        table = self.proj_n if name == "proj_n" or self.config.share_inout_proj else self.proj_back_n
        if tuple(grid) == tuple(self.config.grid_size):
            return table
        return resample_position_embeddings(table.unsqueeze(0), self.config.grid_size, grid, 1,
                                            antialias=self.config.interpolate_antialias).squeeze(0)

    def forward(self, query: torch.Tensor, key: torch.Tensor, budget: int, grid: tuple[int, int], sparse: bool,
                raw: bool, output_coefficients: bool = False) -> dict:
        """`query`, `key`: `(B, H, N, head_dim)`. Returns `key_indices (B, H, N-1, budget)`, `approx (B, H, N-1, N)`
        and, if asked or dense, `coefficients (B, H, N-1, rank)`."""
        config = self.config
        query, key = self.proj_c_q(query), self.proj_c_k(key)
        low_rank_keys = key.transpose(-2, -1) @ self.token_projection("proj_n", grid)  # (B, H, c, r)
        cheap = (query @ low_rank_keys) * self.scaling
        coefficients = cheap[:, :, 1:].softmax(dim=-1)  # patch queries only: (B, H, N-1, r)
        back = self.token_projection("proj_back_n", grid).transpose(0, 1)  # (r, N)
        if raw:  # attention-reconstruction training: the raw approximation
            approx = coefficients @ back
        else:
            basis = _threshold(back.abs(), config.basis_threshold)
            if config.basis_coef_topk is None:
                coefficients = _threshold(coefficients, config.basis_coef_threshold)
                approx = coefficients @ basis
            else:
                indices = topk_indices(coefficients, config.basis_coef_topk)  # = topk(...).indices, faster
                values = coefficients.gather(-1, indices)
                if sparse:  # only the kept basis rows (weighted row sums): O(N * topk * N) instead of O(N * r * N)
                    approx = row_sparse_matmul(values, indices, basis)
                    coefficients = (torch.zeros_like(coefficients).scatter(-1, indices, values)
                                    if output_coefficients else None)
                else:  # official: scatter into the dense coefficient matrix
                    coefficients = torch.zeros_like(coefficients).scatter(-1, indices, values)
                    approx = coefficients @ basis
        key_indices = topk_indices(approx.detach(), budget)
        return {"key_indices": key_indices, "approx": approx, "coefficients": coefficients}


def connectivity_mask(key_indices: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """The official binary `attn_mask` `(B, H, N, N)` from the patch queries' key indices; the [CLS] row is dense."""
    batch, heads, queries, _ = key_indices.shape
    mask = torch.zeros(batch, heads, queries, num_tokens, dtype=torch.bool, device=key_indices.device)
    mask.scatter_(-1, key_indices, True)
    cls_row = torch.ones(batch, heads, 1, num_tokens, dtype=torch.bool, device=key_indices.device)
    return torch.cat([cls_row, mask], dim=2)


class SparsifinerAttention(nn.Module):
    """Multi-head self-attention with the connectivity predictor (`qkv`, `proj`, `mask_predictor`, official names)."""

    def __init__(self, config: SparsifinerConfig, layer_index: int):
        super().__init__()
        self.config = config
        self.layer_index = layer_index
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.attention_dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob) if config.hidden_dropout_prob else nn.Identity()
        self.mask_predictor = SparsifinerMaskPredictor(config)

    def path(self) -> str:
        path = self.config.attention_path
        return ("masked" if self.training else "sparse") if path == "auto" else path

    def forward(self, hidden_states: torch.Tensor, grid: tuple[int, int], output_attentions: bool = False,
                output_connectivity: bool = False) -> tuple:
        """Returns `(output, probs, distillation_loss, key_indices, approximation, coefficients)`; the last three
        are None unless `output_connectivity`, the loss is None outside training (flat tensors, so reentrant
        gradient checkpointing carries their gradients)."""
        batch, tokens, dim = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        budget = self.config.budget(self.layer_index, tokens)
        reconstruction = self.training and self.config.attention_reconstruction
        path = "dense" if reconstruction else self.path()
        predicted = self.mask_predictor(query, key, budget, grid, sparse=path == "sparse", raw=reconstruction,
                                        output_coefficients=output_connectivity)
        indices = predicted["key_indices"]
        dropout = self.attention_dropout if self.training else 0.0
        distillation = None
        if path == "sparse":  # the [CLS] query attends densely, each patch query to its k selected keys only
            attention = get_attention_function(self.config, output_attentions)
            cls_out, cls_probs = attention(self, query[:, :, :1], key, value, None, scaling=self.scaling,
                                           dropout=dropout)
            sparse_out, sparse_probs = topk_sparse_attention(query[:, :, 1:], key, value, indices, self.scaling,
                                                             attention, self, dropout)
            out = torch.cat([cls_out, sparse_out.transpose(1, 2)], dim=1)
            probs = (torch.cat([cls_probs, scatter_probabilities(sparse_probs, indices, tokens)], dim=2)
                     if output_attentions else None)
        else:
            mask = None if path == "dense" else connectivity_mask(indices, tokens)
            distill = self.training and not reconstruction
            if distill or output_attentions:  # the dense scores are needed: official eager computation
                scores = (query @ key.transpose(-2, -1)) * self.scaling
                if distill:
                    dense = scores.softmax(dim=-1)
                    distillation = F.mse_loss(predicted["approx"], dense[:, :, 1:], reduction="sum")
                if mask is not None:
                    scores = scores.masked_fill(~mask, float("-inf"))
                probs = nn.functional.dropout(scores.softmax(dim=-1), p=dropout, training=self.training)
                out = (probs @ value).transpose(1, 2)
            else:
                additive = None if mask is None else torch.zeros(mask.shape, dtype=query.dtype,
                                                                  device=query.device).masked_fill(~mask, float("-inf"))
                attention = get_attention_function(self.config, False)
                out, probs = attention(self, query, key, value, additive, scaling=self.scaling, dropout=dropout)
        out = self.proj_drop(self.proj(out.reshape(batch, tokens, dim)))
        connectivity = ((indices, predicted["approx"], predicted["coefficients"]) if output_connectivity
                        else (None, None, None))
        return (out, probs if output_attentions else None, distillation) + connectivity


class SparsifinerBlock(TransformerBlock):
    """The pre-norm ViT block (`layers.TransformerBlock` names) with a `SparsifinerAttention`."""

    def __init__(self, config: SparsifinerConfig, layer_index: int, drop_path: float = 0.0):
        super().__init__(config, config.hidden_size, config.num_attention_heads, drop_path=drop_path,
                         attention=SparsifinerAttention(config, layer_index), **vit_block_kwargs(config))

    def forward(self, hidden_states: torch.Tensor, grid: tuple[int, int], output_attentions: bool = False,
                output_connectivity: bool = False):
        attended, *rest = self.attn(self.norm1(hidden_states), grid, output_attentions, output_connectivity)
        hidden_states = hidden_states + self.drop_path1(self.ls1(attended))
        hidden_states = hidden_states + self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return (hidden_states, *rest)


class SparsifinerPreTrainedModel(VitPreTrainedModel):
    config: SparsifinerConfig
    base_model_prefix = "vit"
    _no_split_modules = ["VitEmbeddings", "SparsifinerBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        """ViT's initialisation; the predictor's token projections are truncated normal (std 0.02, official)."""
        super()._init_weights(module)
        if isinstance(module, SparsifinerMaskPredictor):
            init.trunc_normal_(module.proj_n, std=0.02)
            if not self.config.share_inout_proj:
                init.trunc_normal_(module.proj_back_n, std=0.02)


class SparsifinerModel(SparsifinerPreTrainedModel, VitModel):
    """The Sparsifiner encoder: ViT embeddings, `SparsifinerBlock`s, final norm and [CLS] pooling."""

    def __init__(self, config: SparsifinerConfig, add_pooling_layer: bool = True):
        VitModel.__init__(self, config, add_pooling_layer)

    def build_block(self, config: SparsifinerConfig, index: int, drop_path: float, attention=None):
        return SparsifinerBlock(config, index, drop_path)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                output_connectivity: bool = False, **kwargs) -> SparsifinerModelOutput:
        r"""
        interpolate_pos_encoding: resize the position table and the predictor's token projections to the input.
        output_connectivity: also return the predictor's key indices, masks, approximations and coefficients.
        """
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        check_pixel_values(pixel_values, self.config.num_channels)
        prefix, tokens, grid = self.embeddings(pixel_values, None, interpolate_pos_encoding)
        hidden = self.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        num_tokens = hidden.shape[1]
        all_hidden = [hidden] if output_hidden_states else None
        attentions = [] if output_attentions else None
        collected = {name: [] for name in ("key_indices", "approximate_attentions", "basis_coefficients")}
        distillation = []
        for block in self.blocks:
            hidden, probs, loss, *connectivity = block(hidden, tuple(grid), output_attentions, output_connectivity)
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                attentions.append(probs)
            if loss is not None:
                distillation.append(loss)
            if output_connectivity:
                for name, value in zip(collected, connectivity):
                    collected[name].append(value)
        sequence = self.layernorm(hidden)
        pooled = self.pool(sequence)
        if self.pooler is not None:
            pooled = self.pooler(pooled)
        extra = {}
        if output_connectivity:
            extra = {name: tuple(values) for name, values in collected.items()}
            extra["connectivity_masks"] = tuple(connectivity_mask(i, num_tokens) for i in extra["key_indices"])
            kept = sum(num_tokens + (num_tokens - 1) * i.shape[-1] for i in extra["key_indices"])
            extra["attention_sparsity"] = torch.tensor(1 - kept / (len(self.blocks) * num_tokens**2))
        return SparsifinerModelOutput(
            last_hidden_state=sequence, pooler_output=pooled,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            attention_distillation_loss=torch.stack(distillation).mean() if distillation else None, **extra,
        )


class SparsifinerForImageClassification(SparsifinerPreTrainedModel):
    """Sparsifiner with a linear classifier on [CLS]; in training the loss adds `attention_distillation_weight` x
    the attention self-distillation loss (which trains the connectivity predictor without a teacher)."""

    def __init__(self, config: SparsifinerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = SparsifinerModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, output_connectivity: bool = False,
                **kwargs) -> SparsifinerImageClassifierOutput:
        outputs = self.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           output_connectivity=output_connectivity, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        result = image_classifier_output(self, logits, labels, outputs, **kwargs)
        if result.loss is not None and outputs.attention_distillation_loss is not None:
            result.loss = result.loss + self.config.attention_distillation_weight * outputs.attention_distillation_loss
        return SparsifinerImageClassifierOutput(**result, **{name: outputs[name] for name in _PREDICTOR_FIELDS
                                                              if outputs.get(name) is not None})


def attention_reconstruction_loss(approximate_attentions, teacher_attentions) -> torch.Tensor:
    """Official stage-1 loss (`LOSS.ATTN_RECON`, MSE): per block `sum((approx - teacher[:, :, 1:]) ** 2)`, averaged
    over blocks; `teacher_attentions` are a dense teacher's `(B, H, N, N)` maps (e.g. a ViT's `attentions`)."""
    if len(approximate_attentions) != len(teacher_attentions):
        raise ValueError(f"{len(approximate_attentions)} approximations but {len(teacher_attentions)} teacher maps")
    losses = [F.mse_loss(a, t[:, :, 1:], reduction="sum") for a, t in zip(approximate_attentions, teacher_attentions)]
    return torch.stack(losses).mean()


def distillation_loss(student_logits, teacher_logits, student_tokens, teacher_tokens, logits_weight: float = 0.5,
                      token_weight: float = 0.5) -> torch.Tensor:
    """Official stage-2 losses: `CLS_DISTILL` (KL(teacher || student) on logits, batch mean) and `TOKEN_DISTILL`
    (MSE between the final patch tokens), with the official weights 0.5 / 0.5."""
    kl = F.kl_div(F.log_softmax(student_logits, dim=-1), F.log_softmax(teacher_logits, dim=-1), reduction="batchmean",
                  log_target=True)
    return logits_weight * kl + token_weight * F.mse_loss(student_tokens, teacher_tokens)


__all__ = ["SparsifinerPreTrainedModel", "SparsifinerModel", "SparsifinerForImageClassification",
           "SparsifinerModelOutput", "SparsifinerImageClassifierOutput", "SparsifinerMaskPredictor",
           "SparsifinerAttention", "SparsifinerBlock", "connectivity_mask", "attention_reconstruction_loss",
           "distillation_loss"]
