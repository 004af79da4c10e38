"""Our evaluate.Metric subclasses against plain numpy, and the optimiser set-up (weight-decay groups, layer-wise LR
decay, warm-up + cosine schedule)."""

import math

import evaluate
import numpy as np
import pytest
import torch

import hf_vision_zoo
from hf_vision_zoo.training import metrics as M
from hf_vision_zoo.training.optim import cosine_schedule, layer_ids, param_groups


@pytest.fixture
def scores_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, size=500)
    scores = rng.normal(size=(500, 12)).astype(np.float32)
    scores[np.arange(500), labels] += rng.normal(1.0, 1.0, size=500).astype(np.float32)  # better than chance
    return scores, labels


def _numpy_topk(scores, labels, k):
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([labels[i] in top[i] for i in range(len(labels))]))


def test_topk_accuracy_matches_numpy(scores_labels):
    scores, labels = scores_labels
    top1 = M.Top1Accuracy().compute(predictions=scores, references=labels)["top1_accuracy"]
    assert top1 == pytest.approx(float(np.mean(scores.argmax(1) == labels)))
    for k in (2, 5, 12):
        got = M.TopKAccuracy(k=k).compute(predictions=scores, references=labels)[f"top{k}_accuracy"]
        assert got == pytest.approx(_numpy_topk(scores, labels, k))
    assert M.TopKAccuracy(k=12).compute(predictions=scores, references=labels)["top12_accuracy"] == 1.0
    assert 0.1 < top1 < M.Top5Accuracy().compute(predictions=scores, references=labels)["top5_accuracy"] < 1.0


def test_metrics_accumulate_batches_and_combine(scores_labels):
    scores, labels = scores_labels
    metric = M.Top5Accuracy()
    for start in range(0, 500, 128):
        metric.add_batch(predictions=scores[start:start + 128], references=labels[start:start + 128])
    assert metric.compute()["top5_accuracy"] == pytest.approx(_numpy_topk(scores, labels, 5))
    combined = evaluate.combine([M.Top1Accuracy(), M.Top5Accuracy()]).compute(predictions=scores, references=labels)
    assert set(combined) == {"top1_accuracy", "top5_accuracy"}
    assert isinstance(M.Top1Accuracy(), evaluate.Metric)


def test_per_class_accuracy_matches_numpy(scores_labels):
    scores, labels = scores_labels
    names = [f"c{i}" for i in range(12)]
    result = M.PerClassAccuracy(class_names=names).compute(predictions=scores, references=labels)
    predicted = scores.argmax(1)
    expected = [float(np.mean(predicted[labels == c] == c)) for c in range(12)]
    np.testing.assert_allclose(result["per_class_accuracy"], expected)
    assert result["per_class_count"] == np.bincount(labels, minlength=12).tolist()
    assert result["mean_per_class_accuracy"] == pytest.approx(np.mean(expected))
    assert result["per_class_accuracy_by_name"]["c3"] == pytest.approx(expected[3])


def test_per_class_accuracy_with_an_absent_class_and_ties():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 2, 0])
    result = M.PerClassAccuracy().compute(predictions=scores, references=labels)
    assert result["per_class_accuracy"][0] == 1.0 and result["per_class_accuracy"][2] == 0.0  # ties -> lower index
    assert math.isnan(result["per_class_accuracy"][1]) and result["mean_per_class_accuracy"] == 0.5
    assert M.Top1Accuracy().compute(predictions=scores, references=labels)["top1_accuracy"] == pytest.approx(2 / 3)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="class indices"):
        M.Top1Accuracy().compute(predictions=np.zeros((2, 3)), references=np.array([0, 3]))
    with pytest.raises(ValueError, match="k must be"):
        M.TopKAccuracy(k=0)
    with pytest.raises(ValueError, match="class names"):
        M.PerClassAccuracy(class_names=["a"]).compute(predictions=np.zeros((2, 3)), references=np.array([0, 1]))


def test_classification_metrics_bundle(scores_labels):
    scores, labels = scores_labels
    result = M.classification_metrics(scores, labels)
    assert result["top1_accuracy"] == pytest.approx(float(np.mean(scores.argmax(1) == labels)))
    assert result["top5_accuracy"] == pytest.approx(_numpy_topk(scores, labels, 5))
    assert len(result["per_class_accuracy"]) == 12


# ------------------------------------------------------------------------------------------------ optimiser
@pytest.fixture
def swin():
    return hf_vision_zoo.create_model("swin", num_labels=4, image_size=32, patch_size=2, embed_dim=16,
                                      depths=[2, 2], num_heads=[2, 4], window_size=4)


def test_layer_ids_follow_depth(swin):
    ids, num_layers = layer_ids(swin)
    assert num_layers == 4 + 2  # 4 blocks, plus stem and head
    assert ids["swin.embeddings.patch_embed.proj.weight"] == 0
    assert ids["swin.stages.0.blocks.0.attn.qkv.weight"] == 1
    assert ids["swin.stages.0.blocks.1.mlp.fc1.weight"] == 2
    assert ids["swin.stages.0.downsample.reduction.weight"] == 2  # patch merging goes with the block before it
    assert ids["swin.stages.1.blocks.1.attn.proj.weight"] == 4
    assert ids["classifier.weight"] == 5 and ids["swin.layernorm.weight"] == 5
    assert len(ids) == sum(1 for p in swin.parameters() if p.requires_grad)


def test_param_groups_layer_decay_and_no_decay(swin):
    groups = param_groups(swin, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    by_name = {name: g for g in groups for name in g["param_names"]}
    assert by_name["classifier.weight"]["lr"] == pytest.approx(1e-3)
    assert by_name["swin.stages.1.blocks.1.attn.qkv.weight"]["lr"] == pytest.approx(0.5e-3)
    assert by_name["swin.embeddings.patch_embed.proj.weight"]["lr"] == pytest.approx(1e-3 * 0.5**5)
    for name in ("classifier.bias", "swin.layernorm.weight",
                 "swin.stages.0.blocks.0.attn.relative_position_bias_table"):
        assert by_name[name]["weight_decay"] == 0.0, name
    assert by_name["swin.stages.0.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(swin.parameters()))
    flat = param_groups(swin, lr=1e-3, weight_decay=0.05)
    assert {g["lr"] for g in flat} == {1e-3} and len(flat) == 2
    torch.optim.AdamW(groups)  # the groups are valid optimizer input
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(swin, 1e-3, 0.05, layer_decay=1.5)


def test_cosine_schedule_with_warmup():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_schedule(opt, total_steps=20, warmup_steps=4, min_lr_ratio=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.2) and lrs[3] == pytest.approx(0.8) and lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # decays monotonically after warm-up
    assert lrs[12] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lrs[20] == pytest.approx(0.1)


def test_metrics_module_loads_with_evaluate_load_by_path():
    """evaluate parses a metric script's imports; ours loads by path (offline) and computes top-1."""
    loaded = evaluate.load(M.__file__)
    assert loaded.compute(predictions=np.eye(3), references=[0, 1, 2]) == {"top1_accuracy": 1.0}
