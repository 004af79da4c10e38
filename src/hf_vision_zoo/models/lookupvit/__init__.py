"""LookupViT (paper 30 of the catalog): config, models and image processors, implemented from the paper's public
descriptions (no official code or weights exist).

No named variant is registered: the paper's compressed-grid sizes, lookup patch sizes and widths were not available
to us (METHODS.md section 30), and a variant row would claim a published configuration. `LookupVitConfig()` builds
the zoo's ViT-B/16-width reconstruction (see `modeling_lookupvit` for every choice made).
"""

from ...registry import Architecture, register_architecture
from .configuration_lookupvit import LookupVitConfig
from .image_processing_lookupvit import LookupVitImageProcessor, LookupVitImageProcessorPil
from .modeling_lookupvit import (
    LookupVitForImageClassification,
    LookupVitModel,
    LookupVitModelOutput,
    LookupVitPreTrainedModel,
    estimate_flops,
)

register_architecture(Architecture(
    name="lookupvit",
    config_class=LookupVitConfig,
    model_classes={"feature-extraction": LookupVitModel, "image-classification": LookupVitForImageClassification},
    image_processor_classes={"torchvision": LookupVitImageProcessor, "pil": LookupVitImageProcessorPil},
    paper="LookupViT: Compressing visual information to a limited number of tokens",
    paper_url="https://arxiv.org/abs/2407.12753",
    official_repo="",  # none released
    license="apache-2.0",  # no upstream code: the implementation is the zoo's own
    display_name="LookupViT",
    tiny_config=dict(image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     compressed_grid_size=4, num_labels=5),
))

__all__ = ["LookupVitConfig", "LookupVitModel", "LookupVitForImageClassification", "LookupVitPreTrainedModel",
           "LookupVitModelOutput", "LookupVitImageProcessor", "LookupVitImageProcessorPil", "estimate_flops"]
