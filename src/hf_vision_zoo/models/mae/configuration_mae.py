"""Configuration of MAE, Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022,
https://arxiv.org/abs/2111.06377).

`MaeConfig` is a `VitConfig` (the encoder's fields, so the encoder reloads as a zoo ViT) plus the decoder and the
pre-training objective. Field names follow transformers' `ViTMAEConfig` (decoder_hidden_size,
decoder_num_hidden_layers, decoder_num_attention_heads, mask_ratio, norm_pix_loss); the decoder MLP is given as a
ratio like the encoder's.

The `use_mto` / `mto_*` fields switch on masked token optimization (Choi et al., ECCV 2024,
https://arxiv.org/abs/2404.08330) in the decoder, where MAE's mask tokens are; off by default (plain MAE).
"""

from huggingface_hub.dataclasses import strict

from ...layers.masked_token_optimization import check_mto_config
from ..vit.configuration_vit import VitConfig


@strict
class MaeConfig(VitConfig):
    r"""MAE hyper-parameters; the defaults are the official `mae_vit_base_patch16_dec512d8b`.

    position_embedding_type: "sincos" (the encoder's fixed 2-D sin-cos table, as in the official code); fine-tuning
        usually switches it to "learned" (the table then starts from the sin-cos values).
    decoder_*: the lightweight decoder that sees every token (the encoded ones plus mask tokens).
    mask_ratio: fraction of patches removed before the encoder, in [0, 1).
    norm_pix_loss: regress each patch's pixels normalised by that patch's mean and variance (paper Table 1c).
    use_mto: masked token optimization in the decoder (off = MAE exactly); the `mto_*` fields are `MtoConfig`'s:
    mto_recalibration_weight: factor in [0, 1] on the attention of visible decoder tokens to mask tokens (0 = the
        mask tokens are excluded from the visible tokens' aggregation, 1 = no change).
    mto_singularity_weight: coefficient of the zoo's data-singularity loss on the decoder tokens (0 = off).
    mto_singularity_schedule: its depth weighting, "linear_decay", "uniform" or "input".
    """

    model_type = "zoo_mae"

    position_embedding_type: str = "sincos"
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_mlp_ratio: float | int = 4.0
    mask_ratio: float | int = 0.75
    norm_pix_loss: bool = False
    use_mto: bool = False
    mto_recalibration_weight: float | int = 0.0
    mto_singularity_weight: float | int = 0.0
    mto_singularity_schedule: str = "linear_decay"

    def validate_architecture(self):
        super().validate_architecture()
        if self.decoder_hidden_size < 4 or self.decoder_hidden_size % 4:
            raise ValueError(f"decoder_hidden_size must be a positive multiple of 4 (sin-cos positions), "
                             f"got {self.decoder_hidden_size}")
        if self.decoder_num_hidden_layers < 1:
            raise ValueError(f"decoder_num_hidden_layers must be >= 1, got {self.decoder_num_hidden_layers}")
        if self.decoder_num_attention_heads < 1 or self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(f"decoder_hidden_size {self.decoder_hidden_size} is not divisible by "
                             f"decoder_num_attention_heads {self.decoder_num_attention_heads}")
        if self.decoder_mlp_ratio <= 0:
            raise ValueError(f"decoder_mlp_ratio must be positive, got {self.decoder_mlp_ratio}")
        if isinstance(self.mask_ratio, bool) or not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        check_mto_config(self)


__all__ = ["MaeConfig"]
