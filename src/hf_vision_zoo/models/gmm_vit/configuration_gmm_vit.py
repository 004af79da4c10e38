"""Configuration of GMM-ViT ("Toward a Deeper Understanding: RetNet Viewed through Convolution", Li et al., Pattern
Recognition 2024, https://arxiv.org/abs/2309.05375): the zoo ViT plus a multiplicative attention mask (ELM or GMM).

The defaults are the official small-dataset ViT (`models/create_model.py`, model 'vit', 32 px CIFAR): patch 4,
width 192, depth 9, 12 heads, MLP ratio 2, no qkv bias, LayerNorm eps 1e-5 (torch's default), 5 Gaussians
(`--num_kernals`), and, because a mask is used, no [CLS] token and mean pooling followed by the head's LayerNorm.
"""

from huggingface_hub.dataclasses import strict

from ..vit.configuration_vit import VitConfig

ATTENTION_MASK_TYPES = ("gmm", "elm", "none")


@strict
class GmmVitConfig(VitConfig):
    r"""VitConfig fields plus:

    attention_mask_type: "gmm" (Gaussian mixture mask), "elm" (element-wise learnable mask) or "none" (plain ViT).
    num_kernels: Gaussians per head of the GMM (official `num_kernals`, default 5).
    gmm_sigma_init_mean / gmm_sigma_init_std / gmm_alpha_init_std: the official initialisation
        `sigma ~ N(10, 10^2)`, `alpha ~ N(0, 2^2)`.
    elm_init_value: the ELM's initial value (official: 0).
    """

    model_type = "zoo_gmm_vit"

    image_size: int | list[int] | tuple[int, int] = 32
    patch_size: int = 4
    hidden_size: int = 192
    num_hidden_layers: int = 9
    num_attention_heads: int = 12
    mlp_ratio: float | int = 2.0
    qkv_bias: bool = False
    layer_norm_eps: float = 1e-5
    class_token: bool = False
    pooling: str = "mean"
    attention_mask_type: str = "gmm"
    num_kernels: int = 5
    gmm_sigma_init_mean: float | int = 10.0
    gmm_sigma_init_std: float | int = 10.0
    gmm_alpha_init_std: float | int = 2.0
    elm_init_value: float | int = 0.0

    def validate_architecture(self):
        """Reject inconsistent settings with a message naming the field."""
        super().validate_architecture()
        if self.attention_mask_type not in ATTENTION_MASK_TYPES:
            raise ValueError(
                f"attention_mask_type must be one of {ATTENTION_MASK_TYPES}, got {self.attention_mask_type!r}")
        if self.num_kernels < 1:
            raise ValueError(f"num_kernels (Gaussians per head of the GMM) must be >= 1, got {self.num_kernels}")
        for name in ("gmm_sigma_init_std", "gmm_alpha_init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


__all__ = ["GmmVitConfig", "ATTENTION_MASK_TYPES"]
