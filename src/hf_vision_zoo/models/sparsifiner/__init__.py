"""Sparsifiner ("Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers",
https://arxiv.org/abs/2303.13755): config, encoder, classifier, image processors and the official configurations.

The official repository (lim142857/Sparsifiner @ 9a11e26) released no Sparsifiner weights, only the DeiT / LV-ViT
initialisations it fine-tunes from; the variants below are its DeiT-based configurations (ImageNet-1k top-1 from the
paper, Table 1/3) with `checkpoint=None`. A DeiT checkpoint loads into them with `--source deit` (the connectivity
predictors stay freshly initialised, as in the official `main.py`).
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_sparsifiner import SparsifinerConfig
from .image_processing_sparsifiner import SparsifinerImageProcessor, SparsifinerImageProcessorPil
from .modeling_sparsifiner import (
    SparsifinerAttention,
    SparsifinerBlock,
    SparsifinerForImageClassification,
    SparsifinerImageClassifierOutput,
    SparsifinerMaskPredictor,
    SparsifinerModel,
    SparsifinerModelOutput,
    SparsifinerPreTrainedModel,
    attention_reconstruction_loss,
    connectivity_mask,
    distillation_loss,
)

register_architecture(Architecture(
    name="sparsifiner",
    config_class=SparsifinerConfig,
    model_classes={"feature-extraction": SparsifinerModel, "image-classification": SparsifinerForImageClassification},
    image_processor_classes={"torchvision": SparsifinerImageProcessor, "pil": SparsifinerImageProcessorPil},
    paper="Sparsifiner: Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers",
    paper_url="https://arxiv.org/abs/2303.13755",
    official_repo="https://github.com/lim142857/Sparsifiner",
    license="mit",
    display_name="Sparsifiner",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     reduce_n_factor=4, basis_coef_topk=2, num_labels=5),
))

_DEIT = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
         "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
_SIZES = {"small": (384, 6), "base": (768, 12)}
for _size, _rate, _top1 in (("small", 0.25, None), ("base", 0.25, None)):
    _hidden, _heads = _SIZES[_size]
    register_variant(Variant(
        name=f"sparsifiner_deit_{_size}_patch16_224", architecture="sparsifiner",
        config=dict(image_size=224, patch_size=16, hidden_size=_hidden, num_hidden_layers=12,
                    num_attention_heads=_heads, attn_keep_rate=_rate, reduce_n_factor=6, reduce_c_factor=2,
                    basis_threshold=0.02, basis_coef_topk=8, num_labels=1000),
        preprocessing=dict(_DEIT), dataset="imagenet-1k", top1=_top1, checkpoint=None,
        notes="official sparsifiner_default_config.yaml (attention keep rate 0.25, REDUCE_N_FACTOR 6, "
              "REDUCE_C_FACTOR 2, basis top-8); no Sparsifiner weights released; initialise from "
              f"deit_{_size}_patch16_224 with --source deit",
    ))

__all__ = ["SparsifinerConfig", "SparsifinerModel", "SparsifinerForImageClassification", "SparsifinerPreTrainedModel",
           "SparsifinerModelOutput", "SparsifinerImageClassifierOutput", "SparsifinerMaskPredictor",
           "SparsifinerAttention", "SparsifinerBlock", "SparsifinerImageProcessor", "SparsifinerImageProcessorPil",
           "attention_reconstruction_loss", "connectivity_mask", "distillation_loss"]
