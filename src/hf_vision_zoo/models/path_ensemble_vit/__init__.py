"""Path-Ensemble ViT (paper 42 of the catalog): a ViT run as the explicit ensemble of its paths, with path pruning,
EnsembleScale and long-to-short self-distillation; implemented from the abstract and the derivation in METHODS.md
(no official code).

No named variant is registered: the paper's backbones, pruned paths and results were not available to us
(METHODS.md section 42). Any zoo ViT checkpoint loads into these classes unchanged (same parameter names).
"""

from ...registry import Architecture, register_architecture
from .configuration_path_ensemble_vit import PathEnsembleVitConfig, path_names
from .image_processing_path_ensemble_vit import PathEnsembleVitImageProcessor, PathEnsembleVitImageProcessorPil
from .modeling_path_ensemble_vit import (
    PathEnsembleBlock,
    PathEnsembleVitForImageClassification,
    PathEnsembleVitImageClassifierOutput,
    PathEnsembleVitModel,
    PathEnsembleVitModelOutput,
    PathEnsembleVitPreTrainedModel,
    self_distillation_loss,
)

register_architecture(Architecture(
    name="path_ensemble_vit",
    config_class=PathEnsembleVitConfig,
    model_classes={"feature-extraction": PathEnsembleVitModel,
                   "image-classification": PathEnsembleVitForImageClassification},
    image_processor_classes={"torchvision": PathEnsembleVitImageProcessor, "pil": PathEnsembleVitImageProcessorPil},
    paper="Revisiting Vision Transformer from the View of Path Ensemble",
    paper_url="https://arxiv.org/abs/2308.06548",
    official_repo="",  # none found
    license="apache-2.0",  # no upstream code: the implementation is the zoo's own
    display_name="Path-Ensemble ViT",
    # the multi-path form with learnable EnsembleScale, so the common tests exercise the ensemble (not a plain ViT)
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     path_form="multi_path", ensemble_scale=True, num_labels=5),
))

__all__ = ["PathEnsembleVitConfig", "PathEnsembleVitModel", "PathEnsembleVitForImageClassification",
           "PathEnsembleVitPreTrainedModel", "PathEnsembleVitModelOutput", "PathEnsembleVitImageClassifierOutput",
           "PathEnsembleBlock", "PathEnsembleVitImageProcessor", "PathEnsembleVitImageProcessorPil", "path_names",
           "self_distillation_loss"]
