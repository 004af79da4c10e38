"""MAE, Masked Autoencoders (paper: https://arxiv.org/abs/2111.06377): config, pre-training model, the reusable
encoder and classifier, image processors and the published variants.

`MaeForPreTraining` is registered with `AutoModelForPreTraining`; its encoder reloads with `AutoModel` (`MaeModel`,
a `VitModel`) and `AutoModelForImageClassification` (`MaeForImageClassification`, a `VitForImageClassification`).
"""

from ...registry import Architecture, Variant, register_architecture, register_variant
from .configuration_mae import MaeConfig
from .image_processing_mae import MaeImageProcessor, MaeImageProcessorPil
from .modeling_mae import (
    MaeDecoder,
    MaeForImageClassification,
    MaeForPreTraining,
    MaeForPreTrainingOutput,
    MaeModel,
    MaePreTrainedModel,
)

register_architecture(Architecture(
    name="mae",
    config_class=MaeConfig,
    model_classes={"feature-extraction": MaeModel, "image-classification": MaeForImageClassification,
                   "pretraining": MaeForPreTraining},
    image_processor_classes={"torchvision": MaeImageProcessor, "pil": MaeImageProcessorPil},
    paper="Masked Autoencoders Are Scalable Vision Learners",
    paper_url="https://arxiv.org/abs/2111.06377",
    official_repo="https://github.com/facebookresearch/mae",
    license="cc-by-nc-4.0",
    display_name="MAE",
    tiny_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                     num_labels=5),
))

_PRETRAINED = {  # official model functions mae_vit_{size}_patch{p}_dec512d8b; hidden, depth, heads, patch
    "base": (768, 12, 12, 16), "large": (1024, 24, 16, 16), "huge": (1280, 32, 16, 14),
}
_PREPROCESSING = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": True}
for _size, (_hidden, _depth, _heads, _patch) in _PRETRAINED.items():
    _config = dict(image_size=224, patch_size=_patch, hidden_size=_hidden, num_hidden_layers=_depth,
                   num_attention_heads=_heads, decoder_hidden_size=512, decoder_num_hidden_layers=8,
                   decoder_num_attention_heads=16, num_labels=0)
    register_variant(Variant(
        name=f"mae_vit_{_size}_patch{_patch}_dec512d8b.in1k", architecture="mae",
        config={**_config, "norm_pix_loss": True}, preprocessing=dict(_PREPROCESSING),
        dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_{_size}.pth",
        notes="released without the decoder: converts to MaeModel (the encoder); 1600 epochs, norm_pix_loss",
    ))
for _size, _file in (("base", "mae_visualize_vit_base.pth"), ("large", "mae_visualize_vit_large.pth")):
    _hidden, _depth, _heads, _patch = _PRETRAINED[_size]
    register_variant(Variant(
        name=f"mae_vit_{_size}_patch{_patch}_dec512d8b.in1k_visualize", architecture="mae",
        config=dict(image_size=224, patch_size=_patch, hidden_size=_hidden, num_hidden_layers=_depth,
                    num_attention_heads=_heads, num_labels=0),
        preprocessing=dict(_PREPROCESSING), dataset="imagenet-1k (self-supervised)", top1=None,
        checkpoint=f"https://dl.fbaipublicfiles.com/mae/visualize/{_file}",
        notes="encoder + decoder (pixel loss without normalisation, for visualisation): MaeForPreTraining",
    ))

__all__ = ["MaeConfig", "MaeModel", "MaeForImageClassification", "MaeForPreTraining", "MaeDecoder",
           "MaePreTrainedModel", "MaeForPreTrainingOutput", "MaeImageProcessor", "MaeImageProcessorPil"]
