"""Configuration of the zoo's Path-Ensemble ViT (Chang et al., "Revisiting Vision Transformer from the View of Path
Ensemble", ICCV 2023, https://arxiv.org/abs/2308.06548).

A `VitConfig` (same weights and field meanings as the zoo ViT) plus the path-ensemble settings; see
`modeling_path_ensemble_vit` for the equations and what is the zoo's reading.
"""

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
    """

    model_type = "zoo_path_ensemble_vit"

    path_form: str = "multi_path"
    pruned_paths: list[str] | None = None
    ensemble_scale: bool = False
    ensemble_scale_init: float | int = 1.0

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

    @property
    def path_names(self) -> list[str]:
        return path_names(self.num_hidden_layers)

    @property
    def kept_paths(self) -> list[bool]:
        pruned = set(self.pruned_paths or [])
        return [name not in pruned for name in self.path_names]


__all__ = ["PathEnsembleVitConfig", "path_names"]
