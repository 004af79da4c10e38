"""Training, evaluation and data for image classification with accelerate (`hf-vision-zoo train` / `evaluate`).

- `main(argv)` / `train(TrainingArguments)`: train any registered image-classification model (or fine-tune a saved
  folder) on Fashion-MNIST, an image folder or a Hub dataset, with exact `--resume`; the final folder holds
  safetensors weights, the image processor and a model card.
- `evaluate_main(argv)` / `evaluate_model(dir, dataset)`: top-1, top-5 and per-class accuracy of a saved model.
- `data`: dataset loading and transforms; `metrics`: our own `evaluate.Metric`s; `optim`: parameter groups, layer-wise
  LR decay and the warm-up + cosine schedule.
"""

from .arguments import EvaluationArguments, TrainingArguments, parse_overrides
from .data import (
    ClassificationData,
    DataError,
    load_classification_dataset,
    load_fashion_mnist,
    load_hub_dataset,
    load_image_folder,
)
from .loop import TrainingError, TrainResult, evaluate_main, evaluate_model, format_metrics, main, train
from .metrics import PerClassAccuracy, Top1Accuracy, Top5Accuracy, TopKAccuracy, classification_metrics

__all__ = [
    "ClassificationData", "DataError", "EvaluationArguments", "PerClassAccuracy", "Top1Accuracy", "Top5Accuracy",
    "TopKAccuracy", "TrainResult", "TrainingArguments", "TrainingError", "classification_metrics", "evaluate_main",
    "evaluate_model", "format_metrics", "load_classification_dataset", "load_fashion_mnist", "load_hub_dataset",
    "load_image_folder", "main", "parse_overrides", "train",
]
