"""GMM-ViT ("Toward a Deeper Understanding: RetNet Viewed through Convolution", https://arxiv.org/abs/2309.05375):
the zoo ViT with the Gaussian mixture mask (GMM) or the element-wise learnable mask (ELM) multiplying the attention
scores, image processors and the official small-dataset configurations (no checkpoints were released)."""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_gmm_vit import GmmVitConfig
from .image_processing_gmm_vit import GmmVitImageProcessor, GmmVitImageProcessorPil
from .modeling_gmm_vit import GmmVitForImageClassification, GmmVitModel, GmmVitPreTrainedModel

register_architecture(Architecture(
    name="gmm_vit",
    config_class=GmmVitConfig,
    model_classes={"feature-extraction": GmmVitModel, "image-classification": GmmVitForImageClassification},
    image_processor_classes={"torchvision": GmmVitImageProcessor, "pil": GmmVitImageProcessorPil},
    paper="Toward a Deeper Understanding: RetNet Viewed through Convolution",
    paper_url="https://arxiv.org/abs/2309.05375",
    official_repo="https://github.com/CatworldLee/Gaussian-Mixture-Mask-Attention",
    license="apache-2.0",  # the upstream repo has no licence; the implementation is the zoo's own (nothing copied)
    display_name="GMM-ViT",
    # the common tester asserts that SDPA runs, which a multiplicative mask cannot use (see
    # layers/gaussian_mixture_mask.py): its tiny config is the unmasked path; tests/models/gmm_vit runs the same
    # checks on GMM and ELM configs
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     attention_mask_type="none", num_kernels=3, num_labels=5),
))

# official `create_model(img_size, n_classes, args)` with model 'vit' (ViT-Lite: width 192, depth 9, 12 heads,
# MLP ratio 2): patch 4 at 32 px (CIFAR, SVHN), patch 8 at 64 px (Tiny-ImageNet); top-1 from the official README
_DATASETS = {  # name: (classes, image size, patch, mean, std, GMM-ViT top-1, ViT top-1)
    "cifar10": (10, 32, 4, [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616], 95.06, 93.65),
    "cifar100": (100, 32, 4, [0.5070, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762], 77.81, 75.36),
    "svhn": (10, 32, 4, [0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970], 98.01, 97.93),
    "tiny_imagenet": (200, 64, 8, [0.4802, 0.4481, 0.3975], [0.2770, 0.2691, 0.2821], 62.27, 59.89),
}
_NO_WEIGHTS = "no checkpoint released; train with the official recipe (main.py)"
for _data, (_classes, _size, _patch, _mean, _std, _gmm_top1, _vit_top1) in _DATASETS.items():
    _pre = dict(size={"shortest_edge": _size}, crop_size={"height": _size, "width": _size}, image_mean=_mean,
                image_std=_std)
    _base = dict(image_size=_size, patch_size=_patch, num_labels=_classes)
    register_variant(Variant(
        name=f"gmm_vit_lite_patch{_patch}_{_size}.{_data}", architecture="gmm_vit",
        config=dict(_base, attention_mask_type="gmm"), preprocessing=dict(_pre), dataset=_data, top1=_gmm_top1,
        checkpoint=None, notes=f"GMM (5 Gaussians per head), --is_GMM; {_NO_WEIGHTS}"))
    register_variant(Variant(
        name=f"elm_vit_lite_patch{_patch}_{_size}.{_data}", architecture="gmm_vit",
        config=dict(_base, attention_mask_type="elm"), preprocessing=dict(_pre), dataset=_data, top1=None,
        checkpoint=None, notes=f"ELM (element-wise learnable mask), --is_SLM; no README top-1; {_NO_WEIGHTS}"))
    register_variant(Variant(
        name=f"vit_lite_patch{_patch}_{_size}.{_data}", architecture="gmm_vit",
        config=dict(_base, attention_mask_type="none", class_token=True, pooling="cls"), preprocessing=dict(_pre),
        dataset=_data, top1=_vit_top1, checkpoint=None,
        notes=f"the paper's ViT baseline (no mask, [CLS] token); {_NO_WEIGHTS}"))

__all__ = ["GmmVitConfig", "GmmVitModel", "GmmVitForImageClassification", "GmmVitPreTrainedModel",
           "GmmVitImageProcessor", "GmmVitImageProcessorPil"]
