"""S2AFormer (paper 12 of the catalog): config, models and image processors, reconstructed from the paper.

No official code or weights exist and the paper's per-variant widths were not available, so no named variant is
registered (a variant row would claim a published configuration); `create_model("s2aformer")` builds the
reconstruction in the config defaults.
"""

from ...registry import Architecture, register_architecture
from .configuration_s2aformer import S2AFormerConfig
from .image_processing_s2aformer import S2AFormerImageProcessor, S2AFormerImageProcessorPil
from .modeling_s2aformer import (
    S2AFormerBackbone,
    S2AFormerForImageClassification,
    S2AFormerModel,
    S2AFormerPreTrainedModel,
)

register_architecture(Architecture(
    name="s2aformer",
    config_class=S2AFormerConfig,
    model_classes={"feature-extraction": S2AFormerModel, "image-classification": S2AFormerForImageClassification,
                   "backbone": S2AFormerBackbone},
    image_processor_classes={"torchvision": S2AFormerImageProcessor, "pil": S2AFormerImageProcessorPil},
    paper="S2AFormer: Strip Self-Attention for Efficient Vision Transformer",
    paper_url="https://arxiv.org/abs/2505.22195",
    official_repo="",  # none exists (no official code was released)
    license="apache-2.0",  # no upstream code: the reconstruction is the zoo's own (Apache-2.0)
    display_name="S2AFormer",
    # sr_ratios 1: the common tester expects square attention maps (N x N); the reduced (N x N') path is run through
    # the same checks by tests/models/s2aformer/test_modeling_s2aformer.py
    tiny_config=dict(image_size=64, stem_channels=8, embed_dims=[16, 32, 48, 64], depths=[1, 2, 1, 1],
                     num_heads=[1, 2, 2, 4], sr_ratios=[1, 1, 1, 1], qk_compression_ratios=[2, 2, 4, 2],
                     num_labels=5, drop_path_rate=0.0),
))

__all__ = ["S2AFormerConfig", "S2AFormerModel", "S2AFormerForImageClassification", "S2AFormerBackbone",
           "S2AFormerPreTrainedModel", "S2AFormerImageProcessor", "S2AFormerImageProcessorPil"]
