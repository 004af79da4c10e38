"""GMML, Group Masked Model Learning ("GMML is All you Need", https://arxiv.org/abs/2205.14986): config,
pre-training model, the reusable encoder and classifier, image processors and the official configurations.

`GmmlForPreTraining` is registered with `AutoModelForPreTraining` (registry task "pretraining"); its encoder reloads
with `AutoModel` (`GmmlModel`, a `VitModel`) and `AutoModelForImageClassification` (`GmmlForImageClassification`).
The group-masking corruption is the reusable `hf_vision_zoo.layers.group_masking.group_mask_corruption`.
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_gmml import GmmlConfig
from .image_processing_gmml import GmmlImageProcessor, GmmlImageProcessorPil
from .modeling_gmml import (
    GmmlForImageClassification,
    GmmlForPreTraining,
    GmmlForPreTrainingOutput,
    GmmlModel,
    GmmlPreTrainedModel,
    GmmlReconstructionHead,
)

register_architecture(Architecture(
    name="gmml",
    config_class=GmmlConfig,
    model_classes={"feature-extraction": GmmlModel, "image-classification": GmmlForImageClassification,
                   "pretraining": GmmlForPreTraining},
    image_processor_classes={"torchvision": GmmlImageProcessor, "pil": GmmlImageProcessorPil},
    paper="GMML is All you Need",
    paper_url="https://arxiv.org/abs/2205.14986",
    official_repo="https://github.com/Sara-Ahmed/GMML",
    license="gpl",
    display_name="GMML",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     recons_blocks=[1, 2], num_labels=5),
))

# the official backbones (vision_transformer.py: vit_tiny / vit_small (main.py default) / vit_base, patch 16, 224);
# no pre-trained weights were released ("soon" in the official README at 1882712)
_PREPROCESSING = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
for _size, (_hidden, _heads) in {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}.items():
    register_variant(Variant(
        name=f"gmml_vit_{_size}_patch16_224", architecture="gmml",
        config=dict(image_size=224, patch_size=16, hidden_size=_hidden, num_hidden_layers=12,
                    num_attention_heads=_heads, recons_blocks=[6, 8, 10, 12], num_labels=0),
        preprocessing=dict(_PREPROCESSING), dataset="imagenet-1k (self-supervised)", top1=None, checkpoint=None,
        notes="official pre-training configuration (main.py: drop_perc 0.75, drop_replace 0.3, drop_type noise, "
              "drop_align 1, recons_blocks 6-8-10-12); no checkpoint released",
    ))

__all__ = ["GmmlConfig", "GmmlModel", "GmmlForImageClassification", "GmmlForPreTraining", "GmmlPreTrainedModel",
           "GmmlReconstructionHead", "GmmlForPreTrainingOutput", "GmmlImageProcessor", "GmmlImageProcessorPil"]
