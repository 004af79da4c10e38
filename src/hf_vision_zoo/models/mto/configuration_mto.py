"""Configuration of the zoo's MTO pre-training model: SimMIM-style masked image modeling (Xie et al., CVPR 2022,
https://arxiv.org/abs/2111.09886) with masked token optimization ("Emerging Property of Masked Token for Effective
Pre-training", Choi et al., ECCV 2024, https://arxiv.org/abs/2404.08330) switched on.

`MtoConfig` is a `VitConfig` (the encoder reloads as a zoo ViT) with a learnable mask token, the SimMIM objective
and the MTO switch; see `layers/masked_token_optimization.py` for what is the paper's and what is the zoo's choice.
"""

from huggingface_hub.dataclasses import strict

from ...layers.masked_token_optimization import check_mto_config
from ..vit.configuration_vit import VitConfig


@strict
class MtoConfig(VitConfig):
    r"""SimMIM + MTO hyper-parameters (encoder defaults: ViT-B/16 at 224 px).

    use_mask_token: must stay True (masked patches are replaced by the shared learnable mask token).
    mask_ratio: fraction of patches replaced by the mask token, in [0, 1) (SimMIM's 0.6).
    norm_pix_loss: regress per-patch normalised pixels (MAE's option; SimMIM regresses raw pixels).
    use_mto: switch masked token optimization on; off gives the SimMIM baseline exactly.
    mto_recalibration_weight: factor on the attention of visible queries to masked keys, in [0, 1]; 0 = masked
        tokens excluded from the visible tokens' aggregation (the paper's statement), 1 = no recalibration.
    mto_singularity_weight: coefficient of the zoo's data-singularity loss (0 = off; the paper's loss formulas
        were not found, so it is off by default).
    mto_singularity_schedule: depth weighting of that loss: "linear_decay", "uniform" or "input".
    """

    model_type = "zoo_mto"

    use_mask_token: bool = True
    mask_ratio: float | int = 0.6
    norm_pix_loss: bool = False
    use_mto: bool = True
    mto_recalibration_weight: float | int = 0.0
    mto_singularity_weight: float | int = 0.0
    mto_singularity_schedule: str = "linear_decay"

    def validate_architecture(self):
        super().validate_architecture()
        if not self.use_mask_token:
            raise ValueError("MTO optimises the mask token: use_mask_token must be True")
        if isinstance(self.mask_ratio, bool) or not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        check_mto_config(self)


__all__ = ["MtoConfig"]
