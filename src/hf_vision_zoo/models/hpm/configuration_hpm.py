"""Configuration of HPM, Hard Patches Mining (Wang et al., "Hard Patches Mining for Masked Image Modeling",
CVPR 2023, https://arxiv.org/abs/2304.05919; journal version "Bootstrap Masked Visual Modeling via Hard Patches
Mining"). Official code: https://github.com/Haochen-Wang409/HPM (Apache-2.0).

`HpmConfig` is an `MaeConfig` (encoder + reconstruction decoder + pixel target) plus the loss predictor, its
objective and the easy-to-hard masking schedule. Names of the official command-line switches are kept where they
exist (`--relative` -> `relative_loss`, `guide=True` -> `easy_to_hard`).
"""

from huggingface_hub.dataclasses import strict

from ..mae.configuration_mae import MaeConfig


@strict
class HpmConfig(MaeConfig):
    r"""HPM hyper-parameters; the defaults are the official ViT-B/16 recipe (`scripts/pretrain_base.sh`:
    `mae_vit_base_patch16_dec512d8b --mask_ratio 0.75 --learning_loss --relative`, no `--norm_pix_loss`).

    loss_predictor_num_hidden_layers: depth of the loss-predictor decoder (None = `decoder_num_hidden_layers`; the
        official model uses the same depth, width and heads as the reconstruction decoder).
    relative_loss: train the loss predictor with the pairwise ranking (binary cross-entropy) objective over the
        masked patches of each image (official `--relative`); False = MSE to the per-image standardised losses.
    hard_patch_ratio: the largest fraction of the masked patches that are chosen as the patches with the highest
        predicted loss (official `keep_ratio = 0.5`); the rest of the mask is random.
    easy_to_hard: grow that fraction linearly with training progress, `hard_patch_ratio * progress` (official
        `guide=True`: `0.5 * (epoch + 1) / total_epochs`); False = always `hard_patch_ratio`.
    use_ema_teacher: predict the losses that pick the mask with an exponential moving average of the model (the
        official `ModelEma`); False = the current weights (no gradient), which saves one model copy.
    ema_decay / ema_decay_end / ema_decay_warmup: the teacher's decay rises linearly from `ema_decay` to
        `ema_decay_end` over the first `ema_decay_warmup` fraction of training (official: 0.999 -> 0.9999 over the
        first 100 epochs, i.e. 0.125 of the 800-epoch recipe and 0.5 of the 200-epoch one).
    """

    model_type = "zoo_hpm"

    norm_pix_loss: bool = False
    loss_predictor_num_hidden_layers: int | None = None
    relative_loss: bool = True
    hard_patch_ratio: float | int = 0.5
    easy_to_hard: bool = True
    use_ema_teacher: bool = True
    ema_decay: float = 0.999
    ema_decay_end: float = 0.9999
    ema_decay_warmup: float | int = 0.125

    @property
    def loss_predictor_depth(self) -> int:
        return self.loss_predictor_num_hidden_layers or self.decoder_num_hidden_layers

    def validate_architecture(self):
        super().validate_architecture()
        depth = self.loss_predictor_num_hidden_layers
        if depth is not None and (isinstance(depth, bool) or depth < 1):
            raise ValueError(f"loss_predictor_num_hidden_layers must be >= 1 or None, got {depth}")
        if isinstance(self.hard_patch_ratio, bool) or not 0.0 <= self.hard_patch_ratio <= 1.0:
            raise ValueError(f"hard_patch_ratio (fraction of the masked patches mined as hard) must be in [0, 1], "
                             f"got {self.hard_patch_ratio}")
        for name in ("ema_decay", "ema_decay_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if isinstance(self.ema_decay_warmup, bool) or not 0.0 <= self.ema_decay_warmup <= 1.0:
            raise ValueError(f"ema_decay_warmup is a fraction of training in [0, 1], got {self.ema_decay_warmup}")


__all__ = ["HpmConfig"]
