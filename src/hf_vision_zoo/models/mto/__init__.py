"""MTO, masked token optimization ("Emerging Property of Masked Token for Effective Pre-training", paper:
https://arxiv.org/abs/2404.08330), switched on a SimMIM-style pre-training model: config, pre-training model, the
reusable encoder and classifier, image processors. No variants: no released checkpoint was available to us.

The reusable MTO pieces (for any MIM model with mask tokens) live in `layers/masked_token_optimization.py`.
"""

from ...registry import Architecture, register_architecture
from .configuration_mto import MtoConfig
from .image_processing_mto import MtoImageProcessor, MtoImageProcessorPil
from .modeling_mto import (
    MtoForImageClassification,
    MtoForPreTraining,
    MtoForPreTrainingOutput,
    MtoModel,
    MtoPreTrainedModel,
)

register_architecture(Architecture(
    name="mto",
    config_class=MtoConfig,
    model_classes={"feature-extraction": MtoModel, "image-classification": MtoForImageClassification,
                   "pretraining": MtoForPreTraining},
    image_processor_classes={"torchvision": MtoImageProcessor, "pil": MtoImageProcessorPil},
    paper="Emerging Property of Masked Token for Effective Pre-training",
    paper_url="https://arxiv.org/abs/2404.08330",
    official_repo="",  # the ECCV abstract names github.com/doihye/MTO; not available to us, licence unknown
    license="apache-2.0",  # no upstream code: the implementation is the zoo's own (Apache-2.0)
    display_name="MTO",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     mto_singularity_weight=0.1, num_labels=5),
))

__all__ = ["MtoConfig", "MtoModel", "MtoForImageClassification", "MtoForPreTraining", "MtoPreTrainedModel",
           "MtoForPreTrainingOutput", "MtoImageProcessor", "MtoImageProcessorPil"]
