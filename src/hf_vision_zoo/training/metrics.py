"""Classification metrics as our own `evaluate.Metric` subclasses: top-1, top-k and per-class accuracy.

`evaluate.load("accuracy")` fetches its script from the Hub, which does not work offline, so the zoo ships these.
All three take the same inputs - `predictions`: one row of class scores (logits or probabilities) per image,
`references`: the true class index - so they also work together in `evaluate.combine([...])`.

This file is self-contained (absolute imports only, one per line) so `evaluate.load("<path>/metrics.py")` can load
it too: evaluate parses the import lines of a metric script and misreads `import a, b` (see notes/STACK.md §4).
"""

import datasets
import evaluate
import numpy as np

_FEATURES = datasets.Features({
    "predictions": datasets.Sequence(datasets.Value("float32")),
    "references": datasets.Value("int64"),
})

_DESCRIPTION = "Top-k accuracy: a prediction is correct when the true class is among the k highest scores."
_KWARGS = """
Args:
    predictions: (N, C) class scores (logits or probabilities), one row per example.
    references: (N,) true class indices in [0, C).
"""


def _as_arrays(predictions, references):
    scores = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(references, dtype=np.int64)
    if scores.ndim != 2:
        raise ValueError(f"predictions must be (N, num_classes) scores, got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"references must be (N,) = ({scores.shape[0]},), got shape {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError("no predictions to score")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"references must be class indices in [0, {scores.shape[1]}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return scores, labels


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,) array: is the true class among the k highest scores? Ties are broken towards the lower index
    (as `argmax` does), so top-1 equals `scores.argmax(1) == labels`."""
    k = min(int(k), scores.shape[1])
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


class TopKAccuracy(evaluate.Metric):
    """Fraction of examples whose true class is among the `k` highest-scoring classes (`k=1`: plain accuracy).

    `TopKAccuracy(k=5).compute(predictions=scores, references=labels)` -> `{"top5_accuracy": 0.93}`."""

    def __init__(self, k: int = 1, **kwargs):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        kwargs.setdefault("keep_in_memory", True)
        kwargs.setdefault("config_name", f"top{self.k}")
        super().__init__(**kwargs)

    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
                                   features=_FEATURES)

    def _compute(self, predictions, references):
        scores, labels = _as_arrays(predictions, references)
        return {f"top{self.k}_accuracy": float(topk_correct(scores, labels, self.k).mean())}


class Top1Accuracy(TopKAccuracy):
    """Top-1 accuracy (`{"top1_accuracy": ...}`)."""

    def __init__(self, **kwargs):
        super().__init__(k=1, **kwargs)


class Top5Accuracy(TopKAccuracy):
    """Top-5 accuracy (`{"top5_accuracy": ...}`); with fewer than 5 classes it is top-`num_classes` (always 1)."""

    def __init__(self, **kwargs):
        super().__init__(k=5, **kwargs)


class PerClassAccuracy(evaluate.Metric):
    """Top-1 accuracy of each true class (recall per class) and their mean (balanced accuracy).

    Returns `{"per_class_accuracy": [acc_0, ..., acc_{C-1}], "per_class_count": [...], "mean_per_class_accuracy": m}`;
    a class with no examples gets NaN and is left out of the mean. Pass `class_names` to also get
    `{"per_class_accuracy_by_name": {name: acc}}`."""

    def __init__(self, class_names=None, **kwargs):
        self.class_names = list(class_names) if class_names is not None else None
        kwargs.setdefault("keep_in_memory", True)
        super().__init__(**kwargs)

    def _info(self):
        return evaluate.MetricInfo(description="Per-class top-1 accuracy (recall) and its mean.", citation="",
                                   inputs_description=_KWARGS, features=_FEATURES)

    def _compute(self, predictions, references):
        scores, labels = _as_arrays(predictions, references)
        num_classes = scores.shape[1]
        if self.class_names is not None and len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} score columns")
        correct = scores.argmax(axis=1) == labels
        counts = np.bincount(labels, minlength=num_classes)
        hits = np.bincount(labels, weights=correct.astype(np.float64), minlength=num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
        result = {
            "per_class_accuracy": [float(v) for v in per_class],
            "per_class_count": [int(c) for c in counts],
            "mean_per_class_accuracy": float(np.nanmean(per_class)),
        }
        if self.class_names is not None:
            result["per_class_accuracy_by_name"] = dict(zip(self.class_names, result["per_class_accuracy"]))
        return result


def classification_metrics(predictions, references, class_names=None, top_k=(1, 5)):
    """Top-k accuracies and per-class accuracy of score rows `predictions` against `references`, through the
    metric classes above. Returns one flat dict (`top1_accuracy`, `top5_accuracy`, `per_class_accuracy`, ...)."""
    scores, labels = _as_arrays(predictions, references)
    result = {}
    for k in top_k:
        result.update(TopKAccuracy(k=k).compute(predictions=scores, references=labels))
    result.update(PerClassAccuracy(class_names=class_names).compute(predictions=scores, references=labels))
    return result
