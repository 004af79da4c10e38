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

Path pruning, EnsembleScale and self-distillation, the zoo's reading. The paper's text (equations, tables) was not
available: the abstract only names the three techniques, so every definition below is the zoo's choice.
- Path pruning ("cut out the underperforming paths"): a pruned path p loses its **direct contribution** to the
  classifier, but its output still feeds the longer paths (the abstract: short paths "provide the lower-level
  feature representation for subsequent longer paths"). With keep_p in {0, 1} the classifier reads
      logits = head(pool(LN( sum_p keep_p * s_p * path_p ))),
  while x_l is unchanged. Paths after the last kept one feed nothing the classifier reads, so they are not
  computed: pruning trailing paths saves their FLOPs, pruning any other path saves none (its output is still
  needed). Which paths to prune is left to the user (`pruned_paths`); the paper's criterion was not found. To study
  "the influence of each path" (abstract), `leave_one_path_out_logits` gives, from one forward, the logits with each
  path's direct contribution removed in turn (= the model with that path pruned); scoring them is the zoo's aid.
- EnsembleScale ("re-weight the ensemble components"): s_p above, one learnable scalar per path (`path_scales`,
  initialised to `ensemble_scale_init` = 1, i.e. the unscaled model; s_p = 1 without `ensemble_scale`) on its
  direct contribution only, so the inputs x_l of the longer paths stay the ViT's; scalars of pruned paths get no
  gradient. Per-path scalars (not vectors, not per-branch inside the layer) are the zoo's choice.
- Self-distillation ("transfer knowledge from the long paths to the short paths"; `self_distillation=True`, off by
  default). The students are the short-path sub-ensembles: for each layer l in `distillation_layers` (default: every
  l < L), the paths `embed` ... `ffn{l}` alone, summed with the same keep/scale weights as the full ensemble,
      u_l = sum_{p <= ffn l} keep_p * s_p * path_p     (= x_l when nothing is pruned or scaled),
  read out by the **shared** final norm, pooling and classifier: z_l = head(pool(LN(u_l))). The teacher is the full
  ensemble's logits z, detached. With temperature T and weight alpha,
      distillation_loss = mean_l  T^2 * KL( softmax(z / T) || softmax(z_l / T) )      (batch mean)
      loss = CE(z, labels) + alpha * distillation_loss.
  The u_l are the ensemble's running sum taken at layer boundaries, so a student costs one LayerNorm (of the [CLS]
  token only, with [CLS] pooling) and its share of one classifier matmul over all students; no second forward.
  Defaults T = 1, alpha = 1 (the plain KL, not tuned). Logit-level KL (not feature matching), the students (layer
  prefixes, not single paths), the shared head, T and alpha are the zoo's choices: the paper's loss form, path
  pairs, T and alpha were not found (METHODS.md section 42). In the cascade form the students are x_l (the same
  sums; that form has no pruning or scaling).

The weights and their names are the zoo ViT's (`embeddings`, `blocks.{i}.norm1/attn/ls1/norm2/mlp/ls2`,
`layernorm`, `fc_norm`, and `vit.` + `classifier` in the classifier), so any zoo ViT checkpoint loads unchanged;
`path_scales` is the only new parameter (when `ensemble_scale`); self-distillation adds none.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
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
    short_path_pooler_outputs: (if `short_path_layers`) for each requested layer l, the pooled feature the
        classifier would see from the short-path sub-ensemble `embed` ... `ffn{l}` alone (kept paths, scaled as in
        the full ensemble; in the cascade form, x_l), through the same final norm and pooling.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    path_outputs: tuple[torch.FloatTensor, ...] | None = None
    short_path_pooler_outputs: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PathEnsembleVitImageClassifierOutput(ImageClassifierOutput):
    r"""
    loss: CE of the full ensemble's logits, plus `distillation_weight * distillation_loss` with self-distillation.
    logits: the full (long-path) ensemble's logits, the prediction and the teacher.
    distillation_loss: (with `config.self_distillation`) the mean over students of T^2 * KL(teacher || student),
        unweighted; computed with or without labels, so a training loop can add and log it.
    short_path_logits: (with `config.self_distillation`) the students' logits, one `(batch, num_labels)` tensor per
        layer of `config.student_layers`.
    """

    distillation_loss: torch.FloatTensor | None = None
    short_path_logits: tuple[torch.FloatTensor, ...] | None = None


def self_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           temperature: float = 1.0) -> torch.Tensor:
    """Mean over students and samples of T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    `student_logits` `(students, batch, classes)`, `teacher_logits` `(batch, classes)`; the teacher is detached here
    (it receives no gradient). Computed in float32."""
    if student_logits.ndim != 3 or student_logits.shape[1:] != teacher_logits.shape:
        raise ValueError(f"student_logits must be (students, batch, classes) matching the teacher's "
                         f"{tuple(teacher_logits.shape)}, got {tuple(student_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_teacher = torch.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    log_student = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    return kl.mean() * temperature ** 2


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
                short_path_layers: list[int] | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> PathEnsembleVitModelOutput:
        r"""
        path_form: "cascade" or "multi_path" (default `config.path_form`); the cascade cannot prune or scale.
        output_path_outputs: also return every path's output (before pruning/scaling).
        short_path_layers: layers l in [1, num_hidden_layers]; also return the pooled features of the sub-ensembles
            of the paths up to each (`short_path_pooler_outputs`), read from the running sum (no extra forward).
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
        short_path_layers = self._check_short_path_layers(short_path_layers)
        check_pixel_values(pixel_values, self.config.num_channels)
        prefix, tokens, _ = self.embeddings(pixel_values, None, interpolate_pos_encoding)
        hidden = self.embeddings.dropout(torch.cat([prefix, tokens], dim=1))
        all_hidden = [hidden] if output_hidden_states else None
        attentions = [] if output_attentions else None
        needed = self.computed_paths() if path_form == "multi_path" else len(self.path_names)
        paths = [hidden]
        layer_outputs = {}  # cascade form: x_l of the requested short-path layers
        for layer, block in enumerate(self.blocks):
            if 1 + 2 * layer >= needed:  # nothing from this layer on reaches the classifier
                break
            hidden, probs, attn_path, ffn_path = block(hidden, None, output_attentions, 2 + 2 * layer < needed)
            paths += [attn_path, ffn_path]
            if path_form == "cascade" and layer + 1 in short_path_layers:
                layer_outputs[layer + 1] = hidden
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                attentions.append(probs)
        if path_form == "cascade":
            feature, short_features = hidden, [layer_outputs[layer] for layer in short_path_layers]
        else:  # sub-ensemble l = the first 1 + 2l paths (fewer if trailing paths are pruned: those add nothing)
            ends = [min(1 + 2 * layer, needed) for layer in short_path_layers]
            *short_features, feature = self.ensemble_prefixes(paths[:needed], ends + [needed])
        sequence = self.layernorm(feature)
        path_outputs = None
        if output_path_outputs:
            path_outputs = tuple(paths[:needed]) + (None,) * (len(self.path_names) - needed)
        return PathEnsembleVitModelOutput(
            last_hidden_state=sequence, pooler_output=self.pool(sequence),
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            path_outputs=path_outputs,
            short_path_pooler_outputs=tuple(self.readout(f) for f in short_features) if short_path_layers else None,
        )

    def _check_short_path_layers(self, layers) -> list[int]:
        if layers is None:
            return []
        count = self.config.num_hidden_layers
        if not isinstance(layers, (list, tuple)) or any(
                isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= count for i in layers):
            raise ValueError(f"short_path_layers must be a list of layers in [1, {count}], got {layers!r}")
        kept = self.config.kept_paths
        for layer in layers:
            if not any(kept[:1 + 2 * layer]):
                raise ValueError(f"short_path_layers: every path up to ffn{layer} is pruned; layer {layer}'s "
                                 f"sub-ensemble is empty")
        return list(layers)

    def ensemble(self, paths: list[torch.Tensor]) -> torch.Tensor:
        """The classifier's input: the sum of the kept paths' outputs, each times its EnsembleScale scalar."""
        return self.ensemble_prefixes(paths, [len(paths)])[0]

    def ensemble_prefixes(self, paths: list[torch.Tensor], ends: list[int]) -> list[torch.Tensor]:
        """For each n in `ends`, the (kept, scaled) sum of the first n paths, taken from one running sum in path
        order (so the last, n = len(paths), is `ensemble(paths)` bit for bit). Each n must include a kept path."""
        kept = self.config.kept_paths
        partial = {}
        feature = None
        for index, path in enumerate(paths):
            if kept[index]:
                if self.path_scales is not None:
                    path = path * self.path_scales[index].to(path.dtype)
                feature = path if feature is None else feature + path
            partial[index + 1] = feature
        return [partial[n] for n in ends]

    def readout(self, feature: torch.Tensor) -> torch.Tensor:
        """What the classifier sees of a pre-norm feature `(B, T, C)`: the final norm then the pooling (as
        `pool(layernorm(feature))`; with [CLS] pooling only that token is normalised)."""
        if self.config.pooling == "cls":
            feature = feature[:, :1]
        return self.pool(self.layernorm(feature))


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
        students = self.config.student_layers if self.config.self_distillation else None
        outputs = self.vit(pixel_values, path_form=path_form, interpolate_pos_encoding=interpolate_pos_encoding,
                           short_path_layers=students, output_hidden_states=output_hidden_states,
                           output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        result = image_classifier_output(self, logits, labels, outputs, **kwargs)
        distillation = short_path_logits = None
        if students:
            # all students through the shared classifier in one matmul: (students, batch, num_labels)
            stacked = self.classifier(torch.stack(outputs.short_path_pooler_outputs))
            short_path_logits = tuple(stacked.unbind(0))
            distillation = self_distillation_loss(stacked, logits, self.config.distillation_temperature)
            if result.loss is not None:
                if self.config.problem_type != "single_label_classification":
                    raise ValueError(f"self_distillation needs single-label classification (integer class labels), "
                                     f"but the labels made this a {self.config.problem_type!r} problem")
                result.loss = result.loss + self.config.distillation_weight * distillation.to(result.loss.dtype)
        return PathEnsembleVitImageClassifierOutput(
            loss=result.loss, logits=logits, hidden_states=result.hidden_states, attentions=result.attentions,
            distillation_loss=distillation, short_path_logits=short_path_logits)

    def training_loss_terms(self, outputs: PathEnsembleVitImageClassifierOutput) -> dict:
        """The label-free term the classification loop adds to its own loss (which may use mixed or smoothed
        targets): `{"distillation_loss": (value, distillation_weight)}` with self-distillation, else `{}`."""
        if outputs.distillation_loss is None:
            return {}
        return {"distillation_loss": (outputs.distillation_loss, self.config.distillation_weight)}

    @torch.no_grad()
    def leave_one_path_out_logits(self, pixel_values: torch.Tensor, path_form: str | None = None,
                                  interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """`(num_paths, batch, num_labels)`: row p is the logits with path p's direct contribution removed, as if
        p alone were added to `pruned_paths` (the row of a path already pruned or not computed is the model's own
        logits; a row that would leave no path at all is NaN). One forward. For the abstract's study of "the
        influence of each path": a path whose row scores better (e.g. accuracy on held-out data) than the full
        logits pulls the prediction down, a candidate for `pruned_paths` (the zoo's aid; the paper's criterion was
        not found)."""
        encoder = self.vit
        outputs = encoder(pixel_values, path_form=path_form, interpolate_pos_encoding=interpolate_pos_encoding,
                          output_path_outputs=True, return_dict=True)
        paths = outputs.path_outputs
        computed = [p for p in paths if p is not None]
        full = encoder.ensemble(computed)
        kept = self.config.kept_paths
        features = []
        for index, path in enumerate(paths):
            if path is None or not kept[index]:
                features.append(full)
                continue
            if encoder.path_scales is not None:
                path = path * encoder.path_scales[index].to(path.dtype)
            alone = sum(kept[:len(computed)]) == 1
            features.append(torch.full_like(full, float("nan")) if alone else full - path)
        stacked = torch.stack(features)  # (paths, B, T, C): one readout and one classifier call for all rows
        pooled = encoder.readout(stacked.flatten(0, 1))
        return self.classifier(pooled).unflatten(0, stacked.shape[:2])


__all__ = ["PathEnsembleVitPreTrainedModel", "PathEnsembleVitModel", "PathEnsembleVitForImageClassification",
           "PathEnsembleVitModelOutput", "PathEnsembleVitImageClassifierOutput", "PathEnsembleBlock",
           "self_distillation_loss"]
