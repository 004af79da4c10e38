"""Revisiting Vision Transformer from the View of Path Ensemble (Chang, Wang, Luo, Wang, Shou; ICCV 2023).

Paper: https://arxiv.org/abs/2308.06548. No official code was found; this is the zoo's implementation from the
abstract (the only confirmed content, papers/METHODS.md section 42) and the derivation recorded there, which is
consistent with the abstract but **not confirmed** against the paper's own equations.

Equivalent transformation (METHODS.md section 42). A pre-norm layer computes y = x + A(x), z = y + F(y) with
A = MSA o LN and F = FFN o LN (LayerScale / drop path inside A and F when configured). Substituting,
    z = x + A(x) + F(x + A(x))                     (three parallel paths: identity, attention, FFN-after-attention)
and unrolling over L layers (x_0 the embedding output, x_l the input of layer l+1),
    x_L = x_0 + sum_{l=1..L} [ a_l + f_l ],   a_l = A_l(x_{l-1}),   f_l = F_l(x_{l-1} + a_l).
The 1 + 2L summands are the ensemble's paths ("embed", "attn1", "ffn1", ..., "ffnL"); each reaches the classifier
directly, and x_{l-1} (the sum of the shorter paths) is the input of the longer ones.

What holds exactly: the identity is algebra on the residual stream, so `path_form="multi_path"` (the classifier
reads LN(sum of the path outputs)) equals the cascade (a plain zoo ViT with the same weights) up to float summation
order, for any weights, any pooling, with LayerScale and register tokens (tested in eval mode; in train mode both
forms call the same DropPath modules in the same order, so they draw the same masks, but that is not tested). The
decomposition is on the pre-norm feature: the final LayerNorm is not linear, so per-path *logits* do not sum to
the logits (how the paper treats the final norm and the readout was not found).

Path pruning and EnsembleScale, the zoo's reading (the paper's exact definitions were not found):
- a pruned path loses its **direct contribution** to the classifier, but its output still feeds the longer paths
  (the abstract: short paths "provide the lower-level feature representation for subsequent longer paths"); so the
  classifier reads LN(sum over kept paths), while x_l is unchanged. Paths after the last kept one feed nothing the
  classifier reads, so they are not computed: pruning trailing paths saves their FLOPs, pruning any other path
  saves none (its output is still needed);
- EnsembleScale: one learnable scalar per path (`path_scales`, initialised to `ensemble_scale_init` = 1, i.e. the
  unscaled model) multiplying its direct contribution only; scalars of pruned paths are ignored;
- self-distillation (long paths teaching short ones) is not implemented: its loss, pairs and weights were not found.

The weights and their names are the zoo ViT's (`embeddings`, `blocks.{i}.norm1/attn/ls1/norm2/mlp/ls2`,
`layernorm`, `fc_norm`, and `vit.` + `classifier` in the classifier), so any zoo ViT checkpoint loads unchanged;
`path_scales` is the only new parameter (when `ensemble_scale`).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import TransformerBlock
from ...layers.vit_block_settings import drop_path_rates, vit_block_kwargs
from ...modeling_utils import check_pixel_values, image_classifier_output
from ..vit.modeling_vit import VitEmbeddings, VitModel, VitPreTrainedModel
from .configuration_path_ensemble_vit import PATH_FORMS, PathEnsembleVitConfig


@dataclass
class PathEnsembleVitModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, tokens, hidden_size)`: LN of the (kept, scaled) sum of the path outputs.
    pooler_output: `(batch, hidden_size)`: [CLS] or the normalised mean of the patch tokens (`config.pooling`).
    hidden_states: the embedding output and every computed layer's output x_l (the inputs of the longer paths).
    attentions: every computed layer's attention probabilities.
    path_outputs: (if `output_path_outputs`) each path's output `(batch, tokens, hidden_size)` in
        `config.path_names` order, before pruning/scaling (None for paths that were not computed).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    path_outputs: tuple[torch.FloatTensor, ...] | None = None


class PathEnsembleBlock(TransformerBlock):
    """The ViT block (same parameters) returning its two paths as well: a = A(x) and f = F(x + a)."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False, compute_ffn: bool = True):
        attended, probs = self.attn(self.norm1(hidden_states), attention_mask, output_attentions)
        attn_path = self.drop_path1(self.ls1(attended))
        hidden_states = hidden_states + attn_path
        if not compute_ffn:
            return hidden_states, probs, attn_path, None
        ffn_path = self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return hidden_states + ffn_path, probs, attn_path, ffn_path


class PathEnsembleVitPreTrainedModel(VitPreTrainedModel):
    config: PathEnsembleVitConfig
    _no_split_modules = ["VitEmbeddings", "PathEnsembleBlock"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, PathEnsembleVitModel) and module.path_scales is not None:
            init.constant_(module.path_scales, float(self.config.ensemble_scale_init))


class PathEnsembleVitModel(PathEnsembleVitPreTrainedModel):
    """A ViT encoder that runs as the cascade or as the explicit multi-path ensemble (with pruning/EnsembleScale)."""

    def __init__(self, config: PathEnsembleVitConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = VitEmbeddings(config)
        self.blocks = nn.ModuleList(
            PathEnsembleBlock(config, config.hidden_size, config.num_attention_heads, drop_path=rate,
                              **vit_block_kwargs(config))
            for rate in drop_path_rates(config.drop_path_rate, config.num_hidden_layers)
        )
        self.layernorm = nn.Identity() if config.fc_norm else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.fc_norm else None
        num_paths = len(config.path_names)
        self.path_scales = (nn.Parameter(torch.full((num_paths,), float(config.ensemble_scale_init)))
                            if config.ensemble_scale else None)
        self.post_init()

    pool = VitModel.pool  # [CLS] or fc-normed mean, exactly as the zoo ViT

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    @property
    def path_names(self) -> list[str]:
        return self.config.path_names

    def computed_paths(self) -> int:
        """How many paths (in `path_names` order) must be computed: everything up to the last kept one."""
        kept = self.config.kept_paths
        return max(i for i, keep in enumerate(kept) if keep) + 1

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, path_form: str | None = None,
                interpolate_pos_encoding: bool = False, output_path_outputs: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> PathEnsembleVitModelOutput:
        r"""
        path_form: "cascade" or "multi_path" (default `config.path_form`); the cascade cannot prune or scale.
        output_path_outputs: also return every path's output (before pruning/scaling).
        interpolate_pos_encoding: resize the position table to the input's patch grid.
        """
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        path_form = self.config.path_form if path_form is None else path_form
        if path_form not in PATH_FORMS:
            raise ValueError(f"path_form must be one of {PATH_FORMS}, got {path_form!r}")
        if path_form == "cascade" and (self.config.pruned_paths or self.path_scales is not None):
            raise ValueError("this model prunes or scales paths, which only the multi_path form can do; "
                             "call it with path_form='multi_path'")
        check_pixel_values(pixel_values, self.config.num_channels)
        prefix, tokens, _ = self.embeddings(pixel_values, None, interpolate_pos_encoding)
        hidden = self.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        all_hidden = [hidden] if output_hidden_states else None
        attentions = [] if output_attentions else None
        needed = self.computed_paths() if path_form == "multi_path" else len(self.path_names)
        paths = [hidden]
        for layer, block in enumerate(self.blocks):
            if 1 + 2 * layer >= needed:  # nothing from this layer on reaches the classifier
                break
            hidden, probs, attn_path, ffn_path = block(hidden, None, output_attentions, 2 + 2 * layer < needed)
            paths += [attn_path, ffn_path]
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                attentions.append(probs)
        feature = hidden if path_form == "cascade" else self.ensemble(paths[:needed])
        sequence = self.layernorm(feature)
        path_outputs = None
        if output_path_outputs:
            path_outputs = tuple(paths[:needed]) + (None,) * (len(self.path_names) - needed)
        return PathEnsembleVitModelOutput(
            last_hidden_state=sequence, pooler_output=self.pool(sequence),
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            path_outputs=path_outputs,
        )

    def ensemble(self, paths: list[torch.Tensor]) -> torch.Tensor:
        """The classifier's input: the sum of the kept paths' outputs, each times its EnsembleScale scalar."""
        kept = self.config.kept_paths
        feature = None
        for index, path in enumerate(paths):
            if not kept[index]:
                continue
            if self.path_scales is not None:
                path = path * self.path_scales[index].to(path.dtype)
            feature = path if feature is None else feature + path
        return feature


class PathEnsembleVitForImageClassification(PathEnsembleVitPreTrainedModel):
    """Path-Ensemble ViT with a linear classifier on the pooled features; loads zoo ViT classifier checkpoints."""

    def __init__(self, config: PathEnsembleVitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = PathEnsembleVitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                path_form: str | None = None, interpolate_pos_encoding: bool = False,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs):
        outputs = self.vit(pixel_values, path_form=path_form, interpolate_pos_encoding=interpolate_pos_encoding,
                           output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        return image_classifier_output(self, logits, labels, outputs, **kwargs)


__all__ = ["PathEnsembleVitPreTrainedModel", "PathEnsembleVitModel", "PathEnsembleVitForImageClassification",
           "PathEnsembleVitModelOutput", "PathEnsembleBlock"]
