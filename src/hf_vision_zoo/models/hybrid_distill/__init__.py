"""Hybrid Distillation ("Hybrid Distillation: Connecting Masked Autoencoders with Contrastive Learners", paper:
https://arxiv.org/abs/2306.15876): config, pre-training model (student + frozen supervised/contrastive teacher +
frozen MIM teacher + progressive redundant token masking), the reusable student encoder and classifier, image
processors. No variants: no code or checkpoint was released.
"""

from ...registry import Architecture, register_architecture
from .configuration_hybrid_distill import HybridDistillConfig
from .image_processing_hybrid_distill import HybridDistillImageProcessor, HybridDistillImageProcessorPil
from .modeling_hybrid_distill import (
    HybridDistillForImageClassification,
    HybridDistillForPreTraining,
    HybridDistillForPreTrainingOutput,
    HybridDistillModel,
    HybridDistillPreTrainedModel,
    feature_distillation_loss,
    redundant_token_mask,
    relation_distillation_loss,
    select_relations,
)

# tiny random teachers with the student's 4x4 patch grid (tests build them from these dicts, no download)
TINY_TEACHER = dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                    num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16)
TINY_MIM_TEACHER = dict(model_type="zoo_mae", image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                        decoder_num_attention_heads=2)

register_architecture(Architecture(
    name="hybrid_distill",
    config_class=HybridDistillConfig,
    model_classes={"feature-extraction": HybridDistillModel,
                   "image-classification": HybridDistillForImageClassification,
                   "pretraining": HybridDistillForPreTraining},
    image_processor_classes={"torchvision": HybridDistillImageProcessor, "pil": HybridDistillImageProcessorPil},
    paper="Hybrid Distillation: Connecting Masked Autoencoders with Contrastive Learners",
    paper_url="https://arxiv.org/abs/2306.15876",
    official_repo="",  # no code released (github.com/lygsbw/hybriddistill holds only a README)
    license="apache-2.0",  # no upstream code: the implementation is the zoo's own (Apache-2.0)
    display_name="Hybrid Distill",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     teacher_config=dict(TINY_TEACHER), mim_teacher_config=dict(TINY_MIM_TEACHER), num_labels=5),
))

__all__ = ["HybridDistillConfig", "HybridDistillModel", "HybridDistillForImageClassification",
           "HybridDistillForPreTraining", "HybridDistillPreTrainedModel", "HybridDistillForPreTrainingOutput",
           "HybridDistillImageProcessor", "HybridDistillImageProcessorPil", "feature_distillation_loss",
           "relation_distillation_loss", "redundant_token_mask", "select_relations", "TINY_TEACHER",
           "TINY_MIM_TEACHER"]
