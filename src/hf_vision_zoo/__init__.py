"""hf_vision_zoo: recent computer-vision papers as Hugging Face-native models.

`import hf_vision_zoo` registers every architecture with transformers' Auto classes, so saved checkpoints load with
`AutoModelForImageClassification.from_pretrained(path)` and `pipeline("image-classification", model=path)`.
"""

from . import models  # noqa: F401  (registers the architectures and variants)
from .models.swin import (
    SwinBackbone,
    SwinConfig,
    SwinForImageClassification,
    SwinImageProcessor,
    SwinImageProcessorPil,
    SwinModel,
)
from .registry import (
    create_image_processor,
    create_model,
    get_config,
    get_variant,
    list_architectures,
    list_models,
    load_backbone,
    register_with_transformers,
)

__version__ = "0.1.0"

register_with_transformers()

__all__ = [
    "create_image_processor", "create_model", "get_config", "get_variant", "list_architectures", "list_models", "load_backbone",
    "SwinConfig", "SwinModel", "SwinForImageClassification", "SwinBackbone", "SwinImageProcessor",
    "SwinImageProcessorPil",
]
