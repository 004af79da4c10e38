"""Configuration of the zoo's Path-Ensemble ViT (Chang et al., "Revisiting Vision Transformer from the View of Path
Ensemble", ICCV 2023, https://arxiv.org/abs/2308.06548).

A `VitConfig` (same weights and field meanings as the zoo ViT) plus the path-ensemble settings; see
`modeling_path_ensemble_vit` for the equations and what is the zoo's reading.
"""

import math

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig

PATH_FORMS = ("cascade", "multi_path")


def path_names(num_layers: int) -> list[str]:
    """The ensemble's paths, shortest first: `embed` (identity), then `attn{l}`, `ffn{l}` for each layer l >= 1."""
    return ["embed"] + [f"{kind}{layer}" for layer in range(1, num_layers + 1) for kind in ("attn", "ffn")]


@strict
class PathEnsembleVitConfig(VitConfig):
    r"""ViT hyper-parameters (defaults ViT-B/16 224) plus:

    path_form: "multi_path" (the explicit ensemble: the classifier reads the sum of every path's output) or
        "cascade" (the ordinary ViT forward). Both give the same output when nothing is pruned or scaled; a forward
        call can pick the other form with `path_form=`.
    pruned_paths: names of paths whose direct contribution to the classifier is cut (see `path_names`; e.g.
        ["ffn12"]); their outputs still feed the longer paths. Needs path_form="multi_path".
    ensemble_scale: learn one scalar per path multiplying its direct contribution (EnsembleScale), initialised to
        `ensemble_scale_init` (1.0 = the unscaled model). Needs path_form="multi_path".
    self_distillation: add the long-to-short self-distillation term to the classification loss (off by default):
        the short-path sub-ensemble up to each layer in `distillation_layers` is read out by the shared final norm
        and classifier (a student) and pulled towards the full ensemble's detached logits (the teacher).
    distillation_layers: the students' layers l in [1, num_hidden_layers]: student l sums the paths `embed` ...
        `ffn{l}`. None = every shorter prefix, 1 ... num_hidden_layers - 1. Ignored while self_distillation is off.
    distillation_temperature: the softmax temperature T of the KL term (> 0; the term is scaled by T^2).
    distillation_weight: alpha in loss = CE(teacher) + alpha * mean over students of KL (>= 0).
    """

    model_type = "zoo_path_ensemble_vit"

    path_form: str = "multi_path"
    pruned_paths: list[str] | None = None
    ensemble_scale: bool = False
    ensemble_scale_init: float | int = 1.0
    self_distillation: bool = False
    distillation_layers: list[int] | None = None
    distillation_temperature: float | int = 1.0
    distillation_weight: float | int = 1.0

    def validate_architecture(self):
        """Reject inconsistent settings with a message naming the field (called by `__post_init__`)."""
        super().validate_architecture()
        if self.path_form not in PATH_FORMS:
            raise ValueError(f"path_form must be one of {PATH_FORMS}, got {self.path_form!r}")
        for name in ("use_pooler", "use_mask_token"):
            if getattr(self, name):
                raise ValueError(f"Path-Ensemble ViT does not support {name}=True")
        pruned = list(self.pruned_paths or [])
        known = path_names(self.num_hidden_layers)
        unknown = [p for p in pruned if p not in known]
        if unknown:
            raise ValueError(f"pruned_paths has unknown paths {unknown}; the {len(known)} paths of a "
                             f"{self.num_hidden_layers}-layer model are {known[0]}, {known[1]}, ..., {known[-1]}")
        if len(set(pruned)) != len(pruned):
            raise ValueError(f"pruned_paths lists a path twice: {pruned}")
        if len(pruned) == len(known):
            raise ValueError("pruned_paths cuts every path: the classifier would see nothing")
        if self.path_form == "cascade" and (pruned or self.ensemble_scale):
            raise ValueError("path pruning and ensemble_scale act on the direct contributions of the paths, which "
                             "the cascade form does not expose; use path_form='multi_path'")
        if not math.isfinite(self.ensemble_scale_init):
            raise ValueError(f"ensemble_scale_init must be finite, got {self.ensemble_scale_init}")
        self._validate_distillation(known, set(pruned))

    def _validate_distillation(self, known: list[str], pruned: set[str]) -> None:
        layers = self.num_hidden_layers
        if self.distillation_layers is not None:
            bad = [i for i in self.distillation_layers if isinstance(i, bool) or not 1 <= i <= layers]
            if bad:
                raise ValueError(f"distillation_layers has {bad} out of range: the students are layers 1 ... "
                                 f"{layers} (student l reads the paths embed ... ffn<l>)")
            if not self.distillation_layers:
                raise ValueError("distillation_layers is empty; give at least one layer, or None for every layer "
                                 f"1 ... {layers - 1}")
            if len(set(self.distillation_layers)) != len(self.distillation_layers):
                raise ValueError(f"distillation_layers lists a layer twice: {self.distillation_layers}")
        if not (math.isfinite(self.distillation_temperature) and self.distillation_temperature > 0):
            raise ValueError(f"distillation_temperature must be a positive number, got {self.distillation_temperature}")
        if not (math.isfinite(self.distillation_weight) and self.distillation_weight >= 0):
            raise ValueError(f"distillation_weight must be >= 0, got {self.distillation_weight}")
        if not self.self_distillation:
            return
        if self.distillation_layers is None and layers < 2:
            raise ValueError("self_distillation with distillation_layers=None needs >= 2 layers (the students are "
                             "the layers before the last); a 1-layer model has no shorter path")
        if self.num_labels < 2:
            raise ValueError(f"self_distillation compares class distributions and needs num_labels >= 2, got "
                             f"{self.num_labels}")
        if self.problem_type not in (None, "single_label_classification"):
            raise ValueError(f"self_distillation is defined for single-label classification, not problem_type="
                             f"{self.problem_type!r}")
        for layer in self.student_layers:
            if all(name in pruned for name in known[:1 + 2 * layer]):
                raise ValueError(f"distillation layer {layer} has no kept path (pruned_paths cuts every path up to "
                                 f"ffn{layer}): that student would read nothing")

    @property
    def path_names(self) -> list[str]:
        return path_names(self.num_hidden_layers)

    @property
    def student_layers(self) -> list[int]:
        """The self-distillation students' layers (`distillation_layers`, or every layer before the last)."""
        if self.distillation_layers is not None:
            return list(self.distillation_layers)
        return list(range(1, self.num_hidden_layers))

    @property
    def kept_paths(self) -> list[bool]:
        pruned = set(self.pruned_paths or [])
        return [name not in pruned for name in self.path_names]


__all__ = ["PathEnsembleVitConfig", "path_names"]
