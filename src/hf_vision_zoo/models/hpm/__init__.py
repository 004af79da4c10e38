"""HPM, Hard Patches Mining for masked image modelling (paper: https://arxiv.org/abs/2304.05919; official code
https://github.com/Haochen-Wang409/HPM): config, pre-training model, the reusable encoder and classifier, image
processors and the published variants.

`HpmForPreTraining` is registered with `AutoModelForPreTraining` (registry task "pretraining"); its encoder reloads
with `AutoModel` (`HpmModel`, a `VitModel`) and `AutoModelForImageClassification` (`HpmForImageClassification`).
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_hpm import HpmConfig
from .image_processing_hpm import HpmImageProcessor, HpmImageProcessorPil
from .modeling_hpm import (
    HpmForImageClassification,
    HpmForPreTraining,
    HpmForPreTrainingOutput,
    HpmLossPredictor,
    HpmModel,
    HpmPreTrainedModel,
    HpmTeacher,
)

register_architecture(Architecture(
    name="hpm",
    config_class=HpmConfig,
    model_classes={"feature-extraction": HpmModel, "image-classification": HpmForImageClassification,
                   "pretraining": HpmForPreTraining},
    image_processor_classes={"torchvision": HpmImageProcessor, "pil": HpmImageProcessorPil},
    paper="Hard Patches Mining for Masked Image Modeling",
    paper_url="https://arxiv.org/abs/2304.05919",
    official_repo="https://github.com/Haochen-Wang409/HPM",
    license="apache-2.0",
    display_name="HPM",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                     num_labels=5),
))

# README of the official repo: 800-epoch pre-training, released on Google Drive (fine-tuned top-1 in the notes)
_PREPROCESSING = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
_RELEASES = {  # size: (hidden, depth, heads, Google Drive file id, fine-tuned ImageNet top-1, ADE20K mIoU)
    "base": (768, 12, 12, "1443UA5e6EvGAdnUkGd3ayMGipkRwhU4u", 84.2, 48.5),
    "large": (1024, 24, 16, "1DLzvdUt1wO5ZEUV12AVOtWyXLUIUR85o", 85.8, 54.6),
}
for _size, (_hidden, _depth, _heads, _file_id, _top1, _miou) in _RELEASES.items():
    register_variant(Variant(
        name=f"hpm_vit_{_size}_patch16_dec512d8b.in1k_ep800", architecture="hpm",
        config=dict(image_size=224, patch_size=16, hidden_size=_hidden, num_hidden_layers=_depth,
                    num_attention_heads=_heads, decoder_hidden_size=512, decoder_num_hidden_layers=8,
                    decoder_num_attention_heads=16, mask_ratio=0.75, norm_pix_loss=False, relative_loss=True,
                    ema_decay_warmup=100 / 800, num_labels=0),
        preprocessing=dict(_PREPROCESSING), dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://drive.google.com/file/d/{_file_id}/view",
        notes=f"pre-training checkpoint (mae_vit_{_size}_patch16_dec512d8b, 800 epochs, --learning_loss "
              f"--relative); fine-tuned: {_top1} top-1, ADE20K {_miou} mIoU (official README)",
    ))

__all__ = ["HpmConfig", "HpmModel", "HpmForImageClassification", "HpmForPreTraining", "HpmPreTrainedModel",
           "HpmLossPredictor", "HpmTeacher", "HpmForPreTrainingOutput", "HpmImageProcessor", "HpmImageProcessorPil"]
