"""The training loop: a real short run on Fashion-MNIST, the saved folder (Auto classes, pipeline, card, logs),
evaluation of a saved folder, the command lines, and the errors (labels vs checkpoint, output folder, bad settings),
including that a failed run leaves no output folder."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import TINY_SWIN, tiny_args

import hf_vision_zoo
from hf_vision_zoo import hub
from hf_vision_zoo.training import TrainingError, evaluate_main, evaluate_model, main, train
from hf_vision_zoo.training.arguments import EvaluationArguments, TrainingArguments, build_parser, parse_overrides
from hf_vision_zoo.training.data import FASHION_MNIST_CLASSES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real 4-epoch run on 2,000 Fashion-MNIST images (about 15 s on 2 cores)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    root = tmp_path_factory.mktemp("trained")
    args = tiny_args(root, model_overrides=TINY_SWIN[:2] + ["embed_dim=32", "depths=[1,1]", "num_heads=[2,4]",
                                                             "window_size=7", "drop_path_rate=0.0"],
                     max_train_samples=2000, max_eval_samples=500, epochs=4, learning_rate=3e-3, rrc_scale=[0.7, 1.0],
                     warmup_steps=None)
    result = train(args)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return result


@pytest.mark.slow
def test_short_training_learns_fashion_mnist(trained):
    history = trained.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert trained.metrics["top1_accuracy"] > 0.45  # chance is 0.10
    assert history[-1]["top1_accuracy"] > history[0]["top1_accuracy"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert trained.metrics["top5_accuracy"] > trained.metrics["top1_accuracy"]
    assert trained.global_step == 4 * 63 and trained.metrics["eval_samples"] == 500


@pytest.mark.slow
def test_saved_folder_is_a_complete_transformers_checkpoint(trained):
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    folder = trained.output_dir
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "all_results.json",
            "training_args.json", "log.jsonl", "metrics.csv"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert not list(folder.parent.glob(f".{folder.name}.tmp-*"))  # the staging folder is gone
    model = AutoModelForImageClassification.from_pretrained(folder)
    assert isinstance(model, hf_vision_zoo.SwinForImageClassification)
    assert [model.config.id2label[i] for i in range(10)] == FASHION_MNIST_CLASSES
    processor = AutoImageProcessor.from_pretrained(folder)
    assert (processor.size.height, processor.size.width) == (28, 28) or processor.crop_size.height == 28
    classify = pipeline("image-classification", model=str(folder))
    from hf_vision_zoo.training.data import load_fashion_mnist

    test = load_fashion_mnist(max_train_samples=1, max_eval_samples=40).eval
    predictions = classify(list(test["image"]), top_k=1)
    accuracy = np.mean([p[0]["label"] == FASHION_MNIST_CLASSES[y] for p, y in zip(predictions, test["label"])])
    assert accuracy > 0.3
    card = (folder / "README.md").read_text()
    assert "fashion_mnist" in card and "pipeline_tag: image-classification" in card
    assert f"{trained.metrics['top1_accuracy']:.4f}" in card and f"# {folder.name}" in card
    results = json.loads((folder / "all_results.json").read_text())
    assert results["top1_accuracy"] == trained.metrics["top1_accuracy"]
    assert set(results["per_class_accuracy"]) == set(FASHION_MNIST_CLASSES)
    lines = (folder / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert (folder / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,lr,train_loss")


@pytest.mark.slow
def test_evaluate_saved_folder_reproduces_the_final_metrics(trained, tmp_path, capsys):
    result = evaluate_model(trained.output_dir, "fashion_mnist", max_eval_samples=500)
    assert result["top1_accuracy"] == pytest.approx(trained.metrics["top1_accuracy"])
    assert result["top5_accuracy"] == pytest.approx(trained.metrics["top5_accuracy"])
    out = tmp_path / "eval.json"
    assert evaluate_main([str(trained.output_dir), "--max-eval-samples", "500", "--output-json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 accuracy" in printed and "Ankle boot" in printed and "top-5 accuracy" in printed
    saved = json.loads(out.read_text())
    assert saved["top1_accuracy"] == pytest.approx(trained.metrics["top1_accuracy"])
    assert len(saved["per_class_accuracy"]) == 10


def test_labels_that_do_not_fit_a_pretrained_checkpoint_are_an_error(tmp_path):
    three = hf_vision_zoo.create_model("swin", num_labels=3, **dict(parse_overrides(TINY_SWIN)))
    three.save_pretrained(tmp_path / "three")
    hf_vision_zoo.create_image_processor("swin").save_pretrained(tmp_path / "three")
    args = tiny_args(tmp_path, model=None, pretrained=str(tmp_path / "three"), model_overrides=[])
    with pytest.raises(TrainingError, match=r"num_labels=3 .* 10 classes.*--ignore-mismatched-sizes"):
        train(args)
    assert not (tmp_path / "model").exists()
    with pytest.raises(TrainingError, match="num_labels=3"):
        evaluate_model(tmp_path / "three", "fashion_mnist", max_eval_samples=10)
    assert main(["--pretrained", str(tmp_path / "three"), "--output-dir", str(tmp_path / "m2"),
                 "--max-train-samples", "32", "--max-eval-samples", "16", "--no-progress"]) == 1


def test_ignore_mismatched_sizes_fine_tunes_a_pretrained_folder(tmp_path):
    three = hf_vision_zoo.create_model("swin", num_labels=3, **dict(parse_overrides(TINY_SWIN)))
    three.save_pretrained(tmp_path / "three")
    hf_vision_zoo.create_image_processor("swin").save_pretrained(tmp_path / "three")
    args = tiny_args(tmp_path, model=None, pretrained=str(tmp_path / "three"), model_overrides=[],
                     ignore_mismatched_sizes=True, max_steps=2, max_train_samples=64, max_eval_samples=32,
                     layer_decay=0.7)
    result = train(args)
    from transformers import AutoModelForImageClassification

    tuned = AutoModelForImageClassification.from_pretrained(result.output_dir)
    assert tuned.config.num_labels == 10 and tuned.config.id2label[9] == "Ankle boot"
    backbone = "swin.stages.0.blocks.0.attn.qkv.weight"
    assert not torch.equal(tuned.state_dict()[backbone], three.state_dict()[backbone])  # it trained
    card = (result.output_dir / "README.md").read_text()
    assert "base_model" in card and str(tmp_path / "three") in card and "layer_decay" in card


def test_model_loss_terms_are_added_to_the_loss_and_logged(tmp_path, monkeypatch):
    """A model's `training_loss_terms(outputs)` ({name: (value, weight)}) joins the loop's cross-entropy: a constant
    term leaves the gradients (so the run) unchanged and shifts the logged loss by exactly weight * value."""
    from hf_vision_zoo.models.swin import SwinForImageClassification

    settings = dict(epochs=1, max_train_samples=64, max_eval_samples=32, checkpoint_each_epoch=False)
    plain = train(tiny_args(tmp_path / "plain", **settings))
    monkeypatch.setattr(SwinForImageClassification, "training_loss_terms",
                        lambda self, outputs: {"extra_loss": (outputs.logits.new_tensor(1.5), 2.0)}, raising=False)
    extra = train(tiny_args(tmp_path / "extra", **settings))
    assert extra.history[-1]["train_extra_loss"] == pytest.approx(1.5)
    assert extra.history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"] + 3.0, abs=1e-5)
    assert extra.metrics["top1_accuracy"] == plain.metrics["top1_accuracy"]


def test_failed_run_leaves_no_output_folder(tmp_path, monkeypatch):
    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full while writing the card")

    monkeypatch.setattr(hub, "write_model_card", broken_card)
    args = tiny_args(tmp_path, max_steps=2, max_train_samples=64, max_eval_samples=32)
    with pytest.raises(RuntimeError, match="disk full"):
        train(args)
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.glob(".model.tmp-*"))  # nothing half-written left behind
    assert (tmp_path / "model-run" / "log.jsonl").exists()  # the run's logs stay for diagnosis


def test_diverging_run_is_an_error_and_leaves_no_output(tmp_path):
    args = tiny_args(tmp_path, max_steps=3, max_train_samples=64, learning_rate=1e30, max_grad_norm=0.0,
                     warmup_steps=0)
    with pytest.raises(TrainingError, match="loss became"):
        train(args)
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob(".model.tmp-*"))


def test_existing_output_folder_is_not_overwritten(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(TrainingError, match="--overwrite-output-dir"):
        train(tiny_args(tmp_path))
    assert (tmp_path / "model" / "config.json").read_text() == "{}"
    result = train(tiny_args(tmp_path, overwrite_output_dir=True, max_steps=3, max_train_samples=96,
                             max_eval_samples=64, mixed_precision="bf16", model_card=False))
    assert (result.output_dir / "model.safetensors").exists() and not (result.output_dir / "README.md").exists()
    # a bf16 run reports the fp32 metrics of the model it saved
    saved = evaluate_model(result.output_dir, "fashion_mnist", max_eval_samples=64)
    assert saved["eval_loss"] == pytest.approx(result.metrics["eval_loss"], abs=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"model": None}, "exactly one of --model"),
    ({"model": "no_such_model"}, "cannot build model"),
    ({"model_overrides": ["num_labels=4"]}, "must not set num_labels"),
    ({"model_overrides": TINY_SWIN + ["embed_dim=15"]}, "(?s)cannot build model.*does not divide"),
    ({"batch_size": 0}, "--batch-size"),
    ({"epochs": 0}, "--epochs"),
    ({"resume": "latest"}, "no checkpoint"),
])
def test_bad_settings_are_clear_errors(tmp_path, changes, message):
    with pytest.raises(TrainingError, match=message):
        train(tiny_args(tmp_path, **changes))


def test_every_option_has_help_and_the_help_runs(capsys):
    for cls in (TrainingArguments, EvaluationArguments):
        parser = build_parser(cls)
        for action in parser._actions:
            assert action.help and len(action.help) > 15, action.dest
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--resume", "--layer-decay", "--gradient-accumulation-steps", "--mixed-precision", "--mixup",
                   "--cutmix", "--checkpoint-every", "--max-grad-norm", "--seed", "--warmup-steps", "--dataset"):
        assert option in text
    with pytest.raises(SystemExit):
        evaluate_main(["--help"])
    assert "MODEL_DIR" in capsys.readouterr().out.upper()


def test_parse_overrides():
    assert parse_overrides(["image_size=28", "depths=[2,2]", "hidden_act=gelu", "qkv_bias=false"]) == {
        "image_size": 28, "depths": [2, 2], "hidden_act": "gelu", "qkv_bias": False}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["image_size"])


def test_evaluate_rejects_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(TrainingError, match="no config.json"):
        evaluate_model(tmp_path, "fashion_mnist")
    assert evaluate_main([str(tmp_path)]) == 1


def test_grey_image_folder_trains_an_rgb_model(tmp_path, fmnist_arrays):
    """Grey PNGs in a folder go through the RGB conversion into a 3-channel model, end to end."""
    from training_helpers import write_image_folder

    write_image_folder(tmp_path / "data", fmnist_arrays[0], fmnist_arrays[1], "train", per_class=8)
    write_image_folder(tmp_path / "data", fmnist_arrays[2], fmnist_arrays[3], "test", per_class=4)
    result = train(tiny_args(tmp_path, dataset=str(tmp_path / "data"), max_train_samples=None, max_eval_samples=None,
                             batch_size=8, epochs=1))
    assert result.metrics["eval_samples"] == 12 and result.metrics["train_samples"] == 24
    from transformers import pipeline

    labels = pipeline("image-classification", model=str(result.output_dir))(Image.fromarray(fmnist_arrays[2][0]))
    assert {p["label"] for p in labels} <= {"T-shirt-top", "Trouser", "Sneaker"}


def test_tensorboard_logging_when_installed_else_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(TrainingError, match="needs the tensorboard package"):
            train(tiny_args(tmp_path, report_to="tensorboard", max_steps=1))
        result = train(tiny_args(tmp_path, report_to="auto", max_steps=1, max_train_samples=32, max_eval_samples=16))
        assert result.output_dir.exists()  # 'auto' quietly falls back to the JSON/CSV logs
    else:
        result = train(tiny_args(tmp_path, report_to="tensorboard", max_steps=1, max_train_samples=32,
                                 max_eval_samples=16))
        assert list((result.run_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert (result.run_dir / "metrics.csv").exists()


def test_worker_processes_give_the_same_run(tmp_path):
    """Augmentation is seeded per sample, so loading in worker processes does not change the run."""
    quick = dict(max_steps=3, max_train_samples=96, max_eval_samples=32)
    inline = train(tiny_args(tmp_path / "a", **quick))
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    workers = train(tiny_args(tmp_path / "b", num_workers=2, **quick))
    from safetensors.torch import load_file

    a, b = (load_file(str(r.output_dir / "model.safetensors")) for r in (inline, workers))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_demo_script_runs_end_to_end_on_a_subset(tmp_path, capsys):
    """examples/demo.py (what `make demo` runs) on 512 images for one epoch: trains, evaluates the saved folder,
    classifies through pipeline() and writes its summary."""
    import runpy

    from training_helpers import REPO

    demo = runpy.run_path(str(REPO / "examples" / "demo.py"), run_name="demo_under_test")
    out = tmp_path / "demo"
    assert demo["main"](["--output-dir", str(out), "--epochs", "1", "--threads", "1", "--max-train-samples", "512",
                         "--max-eval-samples", "200", "--examples", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Test accuracy:" in printed and "pipeline('image-classification'" in printed
    assert printed.count("test image ") == 3
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["test_images"] == 200 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert {"README.md", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in out.iterdir()}
