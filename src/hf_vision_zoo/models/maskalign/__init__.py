"""MaskAlign, "Stare at What You See: Masked Image Modeling without Reconstruction" (paper:
https://arxiv.org/abs/2211.08887; official code https://github.com/OpenDriveLab/maskalign): config, pre-training
model (student + frozen transformers teacher + Dynamic Alignment), the reusable student encoder and classifier,
image processors and the published variants.

`MaskAlignForPreTraining` is registered with `AutoModelForPreTraining` (registry task "pretraining"); its student
reloads with `AutoModel` (`MaskAlignModel`, a `VitModel`) and `AutoModelForImageClassification`
(`MaskAlignForImageClassification`); the teacher and alignment weights are left out.
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_maskalign import MaskAlignConfig
from .image_processing_maskalign import MaskAlignImageProcessor, MaskAlignImageProcessorPil
from .modeling_maskalign import (
    MaskAlignForImageClassification,
    MaskAlignForPreTraining,
    MaskAlignForPreTrainingOutput,
    MaskAlignModel,
    MaskAlignPreTrainedModel,
    attention_guided_mask,
)

# a tiny random CLIP vision tower with the student's 4x4 patch grid (no download: tests build it from this dict)
TINY_TEACHER = dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                    num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16)

register_architecture(Architecture(
    name="maskalign",
    config_class=MaskAlignConfig,
    model_classes={"feature-extraction": MaskAlignModel, "image-classification": MaskAlignForImageClassification,
                   "pretraining": MaskAlignForPreTraining},
    image_processor_classes={"torchvision": MaskAlignImageProcessor, "pil": MaskAlignImageProcessorPil},
    paper="Stare at What You See: Masked Image Modeling without Reconstruction",
    paper_url="https://arxiv.org/abs/2211.08887",
    official_repo="https://github.com/OpenDriveLab/maskalign",
    license="apache-2.0",
    display_name="MaskAlign",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     drop_path_rate=0.0, loss_weights="mean", teacher_config=dict(TINY_TEACHER), num_labels=5),
))

# ModelCard.md of the official repo: 200-epoch pre-training on ImageNet-1k, Google Drive files; the teacher is given
# at pre-training time with teacher_name_or_path (a local CLIPVisionModel folder).
_PREPROCESSING = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
_RELEASES = (  # name suffix, (hidden, depth, heads), teacher settings, Google Drive id, fine-tuned top-1
    ("vit_base_patch16_224.clip_b16_in1k_ep200", (768, 12, 12), dict(fusion_type="linear"),
     "1hu_dlzOxVqS1Zx6W41aOu7qL2XqXOuqx", 85.4),
    ("vit_large_patch16_224.clip_b16_in1k_ep200", (1024, 24, 16), dict(fusion_type="sum"),
     "1hWdjhKso52K5M9xem0j81KJVhlg0oZov", 86.5),
    ("vit_large_patch16_224.clip_l14_196_in1k_ep200", (1024, 24, 16),
     dict(fusion_type="linear", teacher_image_size=196), "1NdwxvQkaHk8axmThxDrQKTLJ8CF_QgM5", 87.4),
)
for _suffix, (_hidden, _depth, _heads), _teacher, _file_id, _top1 in _RELEASES:
    register_variant(Variant(
        name=f"maskalign_{_suffix}", architecture="maskalign",
        config=dict(image_size=224, patch_size=16, hidden_size=_hidden, num_hidden_layers=_depth,
                    num_attention_heads=_heads, drop_path_rate=0.1 if _hidden == 768 else 0.2, num_labels=0,
                    **_teacher),
        preprocessing=dict(_PREPROCESSING), dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://drive.google.com/file/d/{_file_id}/view",
        notes=f"pre-training checkpoint (200 epochs, official README recipe); fine-tuned ImageNet-1k top-1 {_top1} "
              f"(ModelCard.md). Pre-training needs teacher_name_or_path (a local CLIPVisionModel folder)."
              + (" fusion_type 'sum' is inferred: 'linear' needs equal student/teacher depth." if _teacher[
                  "fusion_type"] == "sum" else ""),
    ))

__all__ = ["MaskAlignConfig", "MaskAlignModel", "MaskAlignForImageClassification", "MaskAlignForPreTraining",
           "MaskAlignPreTrainedModel", "MaskAlignForPreTrainingOutput", "MaskAlignImageProcessor",
           "MaskAlignImageProcessorPil", "attention_guided_mask", "TINY_TEACHER"]
