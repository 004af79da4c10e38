"""The `hf-vision-zoo` command: list, info, predict, convert, card, publish, index, train/evaluate forwarding,
--help and user errors (a message on stderr, a nonzero status, no traceback). Run in-process through `cli.main(argv)`; the
installed entry point itself is exercised by test_hub.py's publish-from-environment test."""

import json

import pytest
import torch
import yaml
from hub_testing import LABELS
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skdata

from hf_vision_zoo import cli, hub

SUBCOMMANDS = ["list", "info", "predict", "convert", "card", "publish", "index"]


def run(capsys, *argv):
    code = cli.main(list(map(str, argv)))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# -------------------------------------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_each_command(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: hf-vision-zoo {command}")
    assert "example" in out  # each help shows how to call it


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in SUBCOMMANDS + ["train", "evaluate"]:
        assert f"\n    {command} " in out


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_help_come_from_the_training_package(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0, err
    assert "usage" in out.lower() and "--" in out


def test_usage_errors(capsys):
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "publish", "somewhere")  # --repo-id missing
    assert code == 2 and "--repo-id" in err


# -------------------------------------------------------------------------------------------------- list / info
def test_list(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "arch", "dataset", "top-1", "params", "input", "licence"]
    row = next(line for line in lines if line.startswith("swin_tiny_patch4_window7_224.ms_in1k "))
    assert row.split() == ["swin_tiny_patch4_window7_224.ms_in1k", "swin", "imagenet-1k", "81.2", "28.3M", "224",
                           "mit"]
    import hf_vision_zoo

    assert f"{len(hf_vision_zoo.list_models())} variant(s)" in out


def test_list_pattern_and_json(capsys):
    code, out, _ = run(capsys, "list", "swin_base*384*", "--json", "--no-params")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["swin_base_patch4_window12_384.ms_in1k",
                                         "swin_base_patch4_window12_384.ms_in22k",
                                         "swin_base_patch4_window12_384.ms_in22k_ft_in1k"]
    assert rows[0]["input_size"] == 384 and rows[0]["top1"] == 84.5
    code, out, _ = run(capsys, "list", "large", "--no-params")  # a plain word matches anywhere
    import hf_vision_zoo

    assert code == 0 and f"{len(hf_vision_zoo.list_models('*large*'))} variant(s)" in out
    assert "swin_large_patch4_window7_224.ms_in22k " in out


def test_list_no_match(capsys):
    code, out, err = run(capsys, "list", "resnet*")
    assert code == 1 and out == "" and err.startswith("error: no registered variant matches 'resnet*'")


def test_info_variant(capsys):
    code, out, _ = run(capsys, "info", "swin_tiny_patch4_window7_224.ms_in1k")
    assert code == 0
    assert "https://arxiv.org/abs/2103.14030" in out and "https://github.com/microsoft/Swin-Transformer" in out
    assert "license        mit" in out and "81.2% (published)" in out
    assert "28.29M (28,288,354)" in out
    assert "resize: shortest edge to 256 px (bicubic)" in out and "centre crop: 224x224 px" in out
    code, out, _ = run(capsys, "info", "swin_base_patch4_window12_384.ms_in22k", "--json")
    info = json.loads(out)
    assert info["config"]["window_size"] == 12 and info["config"]["num_labels"] == 21841
    assert info["preprocessing"]["resize"] == "384x384 px (bicubic)" and "centre crop" not in info["preprocessing"]
    assert info["checkpoint"].endswith("swin_base_patch4_window12_384_22k.pth")


def test_info_architecture(capsys):
    code, out, _ = run(capsys, "info", "swin", "--json")
    info = json.loads(out)
    assert code == 0 and info["model_type"] == "zoo_swin" and len(info["variants"]) == 16
    assert info["image_processors"] == {"torchvision": "SwinImageProcessor", "pil": "SwinImageProcessorPil"}


def test_info_unknown_suggests(capsys):
    code, out, err = run(capsys, "info", "swin_tiny")
    assert code == 1 and out == ""
    assert "unknown model or architecture 'swin_tiny'" in err and "swin_tiny_patch4_window7_224.ms_in1k" in err


# ------------------------------------------------------------------------------------------------------ predict
@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(skdata.camera()).save(folder / "sub" / "camera.jpg")  # grayscale, in a sub-folder
    Image.fromarray(skdata.chelsea()).convert("RGBA").save(tmp_path / "chelsea_rgba.png")
    return folder


def _reference(model_dir, paths):
    """Labels and probabilities the model gives without the CLI / pipeline."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**processor([Image.open(p) for p in paths], return_tensors="pt")).logits
    return logits.softmax(-1)


def test_predict_table(capsys, tiny_swin_dir, images):
    code, out, err = run(capsys, "predict", tiny_swin_dir, images, images.parent / "chelsea_rgba.png",
                         "--top-k", 2)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["image", "rank", "label", "score"]
    rows = lines[2:]
    assert len(rows) == 3 * 2  # three images (the folder is searched recursively), two labels each
    paths = [images / "astronaut.png", images / "sub" / "camera.jpg", images.parent / "chelsea_rgba.png"]
    probs = _reference(tiny_swin_dir, paths)
    for i, path in enumerate(paths):
        first, second = rows[2 * i].split(), rows[2 * i + 1].split()
        top = probs[i].topk(2)
        assert first[0] == str(path)
        assert first[1:3] == ["1", LABELS[top.indices[0]]] and second[:2] == ["2", LABELS[top.indices[1]]]
        assert float(first[3]) == pytest.approx(top.values[0].item(), abs=2e-4)


def test_predict_json_and_bad_images(capsys, tiny_swin_dir, images, tmp_path):
    good = images / "astronaut.png"
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:3000])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    code, out, err = run(capsys, "predict", tiny_swin_dir, good, truncated, not_image, tmp_path / "missing.png",
                         "--json")
    assert code == 1  # some inputs failed, the others were still classified
    results = json.loads(out)
    assert results[0]["image"] == str(good)
    scores = [p["score"] for p in results[0]["predictions"]]
    assert [p["label"] for p in results[0]["predictions"]] != [] and len(scores) == 5 == len(LABELS)
    assert sum(scores) == pytest.approx(1.0, abs=1e-4) and scores == sorted(scores, reverse=True)
    errors = {r["image"]: r["error"] for r in results[1:]}
    assert "truncated" in errors[str(truncated)]
    assert "not an image file" in errors[str(not_image)]
    assert errors[str(tmp_path / "missing.png")] == "no such file or folder"
    assert f"error: {truncated}: corrupt or truncated image" in err
    assert "3 input(s) could not be classified" in err


@pytest.mark.parametrize("case", ["no model", "not a model", "no images", "empty folder", "bad top-k"])
def test_predict_user_errors(capsys, tiny_swin_dir, images, tmp_path, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = {"no model": ["predict", tmp_path / "nowhere", images],
            "not a model": ["predict", images, images],
            "no images": ["predict", tiny_swin_dir, tmp_path / "missing.png"],
            "empty folder": ["predict", tiny_swin_dir, empty],
            "bad top-k": ["predict", tiny_swin_dir, images, "--top-k", 0]}[case]
    code, out, err = run(capsys, *argv)
    expected = {"no model": "does not exist", "not a model": "no config.json", "no images": "no readable images",
                "empty folder": "folder has no image files", "bad top-k": "--top-k must be at least 1"}[case]
    assert code == 1 and out == "" and expected in err and err.startswith("error: ")


# ------------------------------------------------------------------------------------------------------ convert
@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", img_size=32, patch_size=2, embed_dim=16,
                              depths=(2, 2), num_heads=(2, 4), window_size=4, num_classes=5).eval()
    path = tmp_path_factory.mktemp("timm") / "swin_timm.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_convert_timm_checkpoint(capsys, timm_checkpoint, tmp_path):
    timm_model, path = timm_checkpoint
    out_dir = tmp_path / "converted"
    code, out, err = run(capsys, "convert", "swin", "--source", "timm", "--checkpoint", path, "--image-size", 32,
                         "--output", out_dir)
    assert code == 0, err
    assert "35,201 parameters, 5 labels, 0 missing / 0 unexpected keys" in out
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(out_dir).eval()
    processor = AutoImageProcessor.from_pretrained(out_dir)
    pixels = processor([Image.fromarray(skdata.coffee()), Image.fromarray(skdata.rocket())],
                       return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, timm_model(pixels), atol=1e-4, rtol=1e-4)

    # the folder is not publishable until it has a card; `card` writes one, then it is complete
    with pytest.raises(hub.CheckpointError, match="missing README.md"):
        hub.check_checkpoint_folder(out_dir)
    code, out, err = run(capsys, "card", out_dir, "--dataset", "imagenet-1k", "--metric", "top1=0.5",
                         "--metric", "top5=0.75", "--training-args", '{"source": "timm random init"}')
    assert code == 0, err
    meta = yaml.safe_load((out_dir / "README.md").read_text().split("---\n")[1])
    assert {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]} == {
        "accuracy": 0.5, "top_5_accuracy": 0.75}
    assert hub.check_checkpoint_folder(out_dir).architecture == "swin"


def test_convert_errors(capsys, timm_checkpoint, tmp_path):
    _, path = timm_checkpoint
    out_dir = tmp_path / "converted"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("x")
    cases = [
        (["swin", "--source", "timm", "--checkpoint", path, "--image-size", 32, "--output", out_dir],
         "exists and is not empty"),
        (["swin", "--source", "caffe", "--checkpoint", path, "--output", tmp_path / "a"], "Unknown source format"),
        (["s2aformer", "--source", "timm", "--checkpoint", path, "--output", tmp_path / "a"], "No converter for"),
        (["swin", "--source", "timm", "--checkpoint", tmp_path / "missing.pth", "--output", tmp_path / "a"],
         "does not exist"),
        (["swin", "--source", "timm", "--checkpoint", path, "--variant", "swin_tiny_patch4_window7_224.ms_in1k",
          "--output", tmp_path / "a"], "does not fit the model config"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, "convert", *argv)
        assert code == 1 and message in err, (argv, err)
    assert (out_dir / "keep.txt").read_text() == "x" and not (tmp_path / "a").exists()


def test_card_errors(capsys, tiny_swin_dir):
    code, _, err = run(capsys, "card", tiny_swin_dir, "--dataset", "x", "--metric", "top1")
    assert code == 1 and "NAME=VALUE" in err
    code, _, err = run(capsys, "card", tiny_swin_dir, "--dataset", "x", "--metric", "top1=abc")
    assert code == 1 and "not a number" in err
    code, _, err = run(capsys, "card", tiny_swin_dir, "--dataset", "x", "--metric", "top1=1", "--training-args", "{")
    assert code == 1 and "--training-args" in err
    code, _, err = run(capsys, "card", tiny_swin_dir, "--dataset", "x")
    assert code == 1 and "metrics must be a non-empty dict" in err


def test_card_reads_metrics_and_args_from_json_files(capsys, tiny_swin_dir, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"eval_top1": 0.8}))
    (tmp_path / "args.json").write_text(json.dumps({"epochs": 7}))
    code, out, err = run(capsys, "card", tiny_swin_dir, "--dataset", "fashion_mnist", "--metrics-json",
                         tmp_path / "metrics.json", "--training-args", tmp_path / "args.json")
    assert code == 0, err
    text = (tiny_swin_dir / "README.md").read_text()
    assert "| epochs | 7 |" in text and "| Top-1 accuracy (`eval_top1`) | 0.8000 |" in text


# ------------------------------------------------------------------------------------------------------ publish
def test_publish_command(capsys, tiny_swin_dir, fake_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", fake_hub.url)
    code, out, err = run(capsys, "publish", tiny_swin_dir, "--repo-id", "org/tiny", "--token", "hf_cli",
                         "--message", "hello")
    assert code == 0, err
    commit = fake_hub.repos["org/tiny"]["commits"][0]
    assert out.strip() == f"{fake_hub.url}/org/tiny/commit/{commit['oid']}" and commit["summary"] == "hello"
    weights = load_file(tiny_swin_dir / "model.safetensors")
    back = load_file(fake_hub.files("org/tiny") / "model.safetensors")
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert fake_hub.repos["org/tiny"]["private"] is False


@pytest.mark.parametrize("missing", ["README.md", "preprocessor_config.json"])
def test_publish_command_refuses_incomplete_folder(capsys, tiny_swin_dir, fake_hub, monkeypatch, missing):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", fake_hub.url)
    (tiny_swin_dir / missing).unlink()
    code, out, err = run(capsys, "publish", tiny_swin_dir, "--repo-id", "org/tiny", "--token", "t")
    assert code == 1 and out == ""
    assert "is not a complete checkpoint" in err and f"missing {missing}" in err
    assert fake_hub.requests == []


def test_publish_command_offline_is_a_clear_error(capsys, tiny_swin_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # never reached
    code, _, err = run(capsys, "publish", tiny_swin_dir, "--repo-id", "org/tiny", "--token", "t")
    assert code == 1 and "unset HF_HUB_OFFLINE" in err


# -------------------------------------------------------------------------------------------------------- index
def test_index_command(capsys, tiny_swin_dir, tmp_path):
    cards = tmp_path / "cards"
    code, out, err = run(capsys, "index", tiny_swin_dir, "--name", "tiny_swin_fmnist", "--repo-id", "org/tiny",
                         "--model-cards-dir", cards)
    assert code == 0, err
    entry = hub.read_index(cards / "index.yaml")[0]
    assert entry["name"] == "tiny_swin_fmnist" and entry["weights"] == "org/tiny"
    assert entry["metrics"] == {"top1": 0.875, "top5": 0.996}
    assert (cards / "tiny_swin_fmnist.md").is_file()
    (tiny_swin_dir / "model.safetensors").unlink()
    code, _, err = run(capsys, "index", tiny_swin_dir, "--name", "x", "--model-cards-dir", cards)
    assert code == 1 and "missing model.safetensors" in err
