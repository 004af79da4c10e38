"""Training, evaluation and data for image classification with accelerate (`hf-vision-zoo train` / `evaluate`).

- `main(argv)` / `train(TrainingArguments)`: train any registered image-classification model (or fine-tune a saved
  folder) on Fashion-MNIST, an image folder or a Hub dataset, with exact `--resume`; the final folder holds
  safetensors weights, the image processor and a model card.
- `pretrain_main(argv)` / `pretrain(PreTrainingArguments)`: self-supervised pre-training of any registered
  `XForPreTraining` model (MAE, HPM, ...) with the same loop machinery; fine-tune or linearly probe the result with
  `train --pretrained DIR [--linear-probe]`.
- `evaluate_main(argv)` / `evaluate_model(dir, dataset)`: top-1, top-5 and per-class accuracy of a saved model, and
  with `--pgd-steps N` its robust top-1 under an L-inf PGD attack.
- `adversarial`: FGSM-with-random-start and PGD in pixel space (fast adversarial training, robust accuracy);
  `--recipe brainscore_crossvit18` (see `arguments.RECIPES`) is the Brain-Score CrossViT training recipe.
- `data`: dataset loading and transforms; `metrics`: our own `evaluate.Metric`s; `optim`: parameter groups, layer-wise
  LR decay and the warm-up + cosine schedule.
"""

from .adversarial import AttackError, fgsm_random_start, pgd
from .arguments import (
    RECIPES,
    EvaluationArguments,
    PreTrainingArguments,
    TrainingArguments,
    parse_overrides,
    training_arguments_from_recipe,
)
from .data import (
    ClassificationData,
    DataError,
    load_classification_dataset,
    load_fashion_mnist,
    load_hub_dataset,
    load_image_folder,
)
from .loop import TrainingError, TrainResult, evaluate_main, evaluate_model, format_metrics, main, train
from .pretrain import PreTrainResult, pretrain, pretrain_main
from .metrics import PerClassAccuracy, Top1Accuracy, Top5Accuracy, TopKAccuracy, classification_metrics

__all__ = [
    "AttackError", "RECIPES", "fgsm_random_start", "pgd", "training_arguments_from_recipe",
    "ClassificationData", "DataError", "EvaluationArguments", "PerClassAccuracy", "Top1Accuracy", "Top5Accuracy",
    "TopKAccuracy", "TrainResult", "TrainingArguments", "TrainingError", "classification_metrics", "evaluate_main",
    "evaluate_model", "format_metrics", "load_classification_dataset", "load_fashion_mnist", "load_hub_dataset",
    "load_image_folder", "main", "parse_overrides", "train",
    "PreTrainingArguments", "PreTrainResult", "pretrain", "pretrain_main",
]
