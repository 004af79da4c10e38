"""hf_vision_zoo.hub: model cards, checkpoint checks, publishing to a loopback fake Hub, the model_cards index."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hub_testing import LABELS
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file

from hf_vision_zoo import hub

REPO_ROOT = Path(__file__).resolve().parents[2]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture
def online_hub(fake_hub, monkeypatch):
    """An HfApi talking to the fake Hub; offline mode (set for the test suite) lifted for this test only."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return HfApi(endpoint=fake_hub.url, token="hf_fake_token")


# ------------------------------------------------------------------------------------------------------------ cards
def test_card_metadata_and_body(tiny_swin_dir):
    text = (tiny_swin_dir / "README.md").read_text()
    meta = front_matter(text)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "image-classification"
    assert meta["license"] == "mit"
    assert {"hf_vision_zoo", "swin", "arxiv:2103.14030"} <= set(meta["tags"])
    assert meta["datasets"] == ["fashion_mnist"]
    results = meta["model-index"][0]["results"][0]
    assert results["task"]["type"] == "image-classification"
    assert results["dataset"]["type"] == "fashion_mnist"
    assert {m["type"]: m["value"] for m in results["metrics"]} == {"accuracy": 0.875, "top_5_accuracy": 0.996}
    params = sum(p.numel() for p in hub._meta_model(hub.check_checkpoint_folder(tiny_swin_dir).config).parameters())
    assert meta["zoo"]["params"] == params == 35201
    assert meta["zoo"]["architecture"] == "swin" and meta["zoo"]["input_size"] == [32, 32]

    body = text.split("---\n", 2)[2]
    paper = "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
    assert f"[{paper}](https://arxiv.org/abs/2103.14030)" in body
    assert "https://github.com/microsoft/Swin-Transformer" in body
    # preprocessing read from preprocessor_config.json, labels from config.json
    assert "| resize | 32x32 px (bicubic) |" in body and "centre crop" not in body
    assert "mean (0.485, 0.456, 0.406)" in body
    assert all(f"`{label}`" in body for label in LABELS)
    # training set-up and results tables
    assert "| learning_rate | 0.001 |" in body and "| per_device_batch_size | 64 |" in body
    assert "| Top-1 accuracy (`top1`) | 0.8750 | fashion_mnist |" in body
    # usage in three lines, citation
    assert "import hf_vision_zoo" in body
    assert 'classifier = pipeline("image-classification", model="tiny-swin")' in body
    assert "@inproceedings{liu2021swin" in body and "International Conference on Computer Vision (ICCV)" in body


def test_card_round_trips_through_huggingface_hub(tiny_swin_dir):
    card = ModelCard.load(tiny_swin_dir / "README.md")
    assert card.data.library_name == "transformers"
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("accuracy", 0.875), ("top_5_accuracy", 0.996)]
    assert card.data.eval_results[0].dataset_name == "fashion_mnist"


def test_card_with_variant_and_local_dataset(tiny_swin_dir, tmp_path):
    data_dir = tmp_path / "my_images"
    data_dir.mkdir()
    card = hub.build_model_card(tiny_swin_dir, dataset_name=str(data_dir), metrics={"eval_accuracy": 0.5},
                                training_args={}, variant="swin_tiny_patch4_window7_224.ms_in1k")
    meta = front_matter(str(card))
    assert "datasets" not in meta  # a local folder is not a Hub dataset id
    assert meta["zoo"]["variant"] == "swin_tiny_patch4_window7_224.ms_in1k"
    assert meta["model-index"][0]["results"][0]["dataset"] == {"name": "my_images", "type": "imagefolder"}
    assert "`swin_tiny_patch4_window7_224.ms_in1k` (published on imagenet-1k, top-1 81.2%)" in card.text


def test_card_per_class_and_numpy_metrics(tiny_swin_dir):
    import numpy as np

    metrics = {"top1": np.float32(0.75), "per_class_accuracy": {"t-shirt": 0.5, "coat": np.float64(1.0)}}
    card = hub.build_model_card(tiny_swin_dir, dataset_name="fashion_mnist", metrics=metrics, training_args={})
    meta = front_matter(str(card))
    assert meta["model-index"][0]["results"][0]["metrics"] == [
        {"type": "accuracy", "value": 0.75, "name": "Top-1 accuracy"}]
    assert "Per class (`per_class_accuracy`):" in card.text
    assert "| t-shirt | 0.5000 |" in card.text and "| coat | 1.0000 |" in card.text


@pytest.mark.parametrize("kwargs, message", [
    (dict(metrics={"top1": float("nan")}), "finite number"),
    (dict(metrics={"top1": "high"}), "finite number"),
    (dict(metrics={}), "non-empty dict"),
    (dict(metrics={"per_class": {"a": 0.5}}), "at least one scalar"),
    (dict(metrics={"top1": True}), "finite number"),
    (dict(dataset_name=""), "dataset_name"),
    (dict(training_args=["lr", 1]), "training_args must be a dict"),
    (dict(variant="swin_tiny"), "Unknown model"),
])
def test_card_bad_arguments(tiny_swin_dir, kwargs, message):
    args = dict(dataset_name="fashion_mnist", metrics={"top1": 0.9}, training_args={})
    args.update(kwargs)
    with pytest.raises((ValueError, KeyError), match=message):
        hub.write_model_card(tiny_swin_dir, **args)


def test_card_needs_a_zoo_checkpoint(tiny_swin_dir):
    config = json.loads((tiny_swin_dir / "config.json").read_text())
    (tiny_swin_dir / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    with pytest.raises(ValueError, match="not a hf_vision_zoo architecture"):
        hub.build_model_card(tiny_swin_dir, dataset_name="x", metrics={"top1": 1.0}, training_args={})
    (tiny_swin_dir / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        hub.build_model_card(tiny_swin_dir, dataset_name="x", metrics={"top1": 1.0}, training_args={})


def test_pretraining_card(tmp_path):
    """`task="pretraining"`: a self-supervised encoder's card (feature-extraction tags, losses not reported as
    evaluation results, `AutoModel` usage), not an image classifier's."""
    from hf_vision_zoo import registry

    folder = tmp_path / "mae-run"
    arch = registry.get_architecture("mae")
    arch.model_classes["pretraining"](arch.config_class(**arch.tiny_config)).save_pretrained(folder)
    registry.create_image_processor("mae").save_pretrained(folder)
    card = hub.build_model_card(folder, dataset_name="fashion_mnist", metrics={"train_loss": 0.74},
                                training_args={"epochs": 1}, task="pretraining")
    meta = front_matter(str(card))
    assert meta["pipeline_tag"] == "image-feature-extraction"
    assert "self-supervised" in meta["tags"] and "image-classification" not in meta["tags"]
    assert "model-index" not in meta and "metrics" not in meta
    assert "pre-training checkpoint" in card.text and "image classifier" not in card.text
    assert 'AutoModel.from_pretrained("mae-run")' in card.text and "pipeline(" not in card.text
    assert "## Final training losses" in card.text and "| 0.7400 |" in card.text
    with pytest.raises(ValueError, match="task must be one of"):
        hub.build_model_card(folder, dataset_name="x", metrics={"top1": 1.0}, training_args={}, task="detection")


# ------------------------------------------------------------------------------------------- checkpoint checking
def test_complete_checkpoint_passes(tiny_swin_dir):
    found = hub.check_checkpoint_folder(tiny_swin_dir)
    assert found.architecture == "swin" and found.weight_files == ["model.safetensors"]
    assert found.config.num_labels == len(LABELS)


def _break(folder: Path, how: str) -> str:
    """Break a complete checkpoint; returns a phrase the error must contain."""
    if how == "no card":
        (folder / "README.md").unlink()
        return "missing README.md"
    if how == "no processor":
        (folder / "preprocessor_config.json").unlink()
        return "missing preprocessor_config.json"
    if how == "no config":
        (folder / "config.json").unlink()
        return "missing config.json"
    if how == "no weights":
        (folder / "model.safetensors").unlink()
        return "missing model.safetensors"
    if how == "pickle weights":
        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        return "pytorch_model.bin"
    if how == "pickle in subfolder":
        (folder / "checkpoints" / "step_10").mkdir(parents=True)
        (folder / "checkpoints" / "step_10" / "optimizer.bin").write_bytes(b"\x80\x04")
        return "checkpoints/step_10/optimizer.bin"
    if how == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[:50])
        return "not readable safetensors"
    if how == "weights of another config":
        config = json.loads((folder / "config.json").read_text())
        config["embed_dim"] = 32
        (folder / "config.json").write_text(json.dumps(config))
        return "weight shapes do not fit config.json"
    if how == "card without metadata":
        (folder / "README.md").write_text("# just a title\n")
        return "no YAML metadata"
    if how == "sharded index without shard":
        (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {"classifier.weight": "model-00001-of-00002.safetensors"}}))
        return "missing weight shards"
    raise AssertionError(how)


BREAKAGES = ["no card", "no processor", "no config", "no weights", "pickle weights", "pickle in subfolder",
             "truncated weights", "weights of another config", "card without metadata", "sharded index without shard"]


@pytest.mark.parametrize("how", BREAKAGES)
def test_incomplete_checkpoint_is_reported(tiny_swin_dir, how):
    expected = _break(tiny_swin_dir, how)
    with pytest.raises(hub.CheckpointError) as info:
        hub.check_checkpoint_folder(tiny_swin_dir)
    assert expected in str(info.value)


def test_every_problem_is_listed_at_once(tiny_swin_dir):
    for how in ("no card", "no processor", "pickle weights"):
        _break(tiny_swin_dir, how)
    with pytest.raises(hub.CheckpointError) as info:
        hub.check_checkpoint_folder(tiny_swin_dir)
    assert len(info.value.problems) == 3
    assert "README.md" in str(info.value) and "preprocessor_config.json" in str(info.value)


def test_sharded_checkpoint_passes(tiny_swin_dir):
    shard = "model-00001-of-00001.safetensors"
    keys = list(load_file(tiny_swin_dir / "model.safetensors"))
    (tiny_swin_dir / "model.safetensors").rename(tiny_swin_dir / shard)
    (tiny_swin_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {k: shard for k in keys}}))
    assert hub.check_checkpoint_folder(tiny_swin_dir).weight_files == [shard]


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        hub.check_checkpoint_folder(tmp_path / "nope")


# -------------------------------------------------------------------------------------------------------- publish
@pytest.mark.parametrize("how", ["no card", "no processor", "pickle weights", "no weights"])
def test_publish_refuses_incomplete_folder_and_sends_nothing(tiny_swin_dir, fake_hub, online_hub, how):
    expected = _break(tiny_swin_dir, how)
    with pytest.raises(hub.CheckpointError, match="not a complete checkpoint") as info:
        hub.publish(tiny_swin_dir, "tester/tiny-swin", api=online_hub)
    assert expected in str(info.value)
    assert fake_hub.requests == [] and fake_hub.repos == {}


def test_publish_uploads_a_loadable_checkpoint(tiny_swin_dir, fake_hub, online_hub):
    weights = load_file(tiny_swin_dir / "model.safetensors")
    url = hub.publish(tiny_swin_dir, "tester/tiny-swin", api=online_hub, private=True,
                      commit_message="first release")
    repo = fake_hub.repos["tester/tiny-swin"]
    assert url == f"{fake_hub.url}/tester/tiny-swin/commit/{repo['commits'][0]['oid']}"
    assert repo["private"] is True
    assert repo["commits"][0]["summary"] == "first release"
    uploaded = fake_hub.files("tester/tiny-swin")
    assert sorted(p.name for p in uploaded.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    back = load_file(uploaded / "model.safetensors")
    assert back.keys() == weights.keys()
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert json.loads((uploaded / "config.json").read_text()) == json.loads(
        (tiny_swin_dir / "config.json").read_text())
    # the card's usage snippet now names the repo, and the uploaded card passed the Hub's YAML validation
    card = (uploaded / "README.md").read_text()
    assert 'pipeline("image-classification", model="tester/tiny-swin")' in card
    assert fake_hub.validated_yaml == [card]
    # what was uploaded is itself a complete checkpoint that loads with the Auto classes
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(uploaded)
    assert type(model).__name__ == "SwinForImageClassification"
    assert all(a == "Bearer hf_fake_token" for a in fake_hub.authorizations)


def test_publish_to_existing_repo_and_branch(tiny_swin_dir, fake_hub, online_hub):
    hub.publish(tiny_swin_dir, "tester/tiny-swin", api=online_hub)
    hub.publish(tiny_swin_dir, "tester/tiny-swin", api=online_hub, revision="v2")  # repo exists: exist_ok
    repo = fake_hub.repos["tester/tiny-swin"]
    assert [c["revision"] for c in repo["commits"]] == ["main", "v2"]
    assert (fake_hub.files("tester/tiny-swin", "v2") / "model.safetensors").is_file()
    assert ("POST", "/api/models/tester/tiny-swin/branch/v2") in fake_hub.requests


def test_publish_skips_hidden_files(tiny_swin_dir, fake_hub, online_hub):
    (tiny_swin_dir / ".cache").mkdir()
    (tiny_swin_dir / ".cache" / "junk.txt").write_text("x")
    (tiny_swin_dir / "train_log.json").write_text("{}")
    hub.publish(tiny_swin_dir, "tester/tiny-swin", api=online_hub)
    uploaded = fake_hub.repos["tester/tiny-swin"]["commits"][0]["files"]
    assert "train_log.json" in uploaded and not any(".cache" in f for f in uploaded)


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "bad id/x"])
def test_publish_rejects_bad_repo_id(tiny_swin_dir, fake_hub, online_hub, repo_id):
    with pytest.raises(ValueError):
        hub.publish(tiny_swin_dir, repo_id, api=online_hub)
    assert fake_hub.requests == []


def test_cli_publish_uses_hf_endpoint_and_token_from_the_environment(tiny_swin_dir, fake_hub):
    """The installed `hf-vision-zoo` command in a fresh process: HF_ENDPOINT/HF_TOKEN are read at import."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=fake_hub.url, HF_TOKEN="hf_env_token", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(tiny_swin_dir.parent / "hf_home"))
    exe = Path(sys.executable).with_name("hf-vision-zoo")
    done = subprocess.run([str(exe), "publish", str(tiny_swin_dir), "--repo-id", "org/tiny-swin", "--private",
                           "--revision", "release"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    commit = fake_hub.repos["org/tiny-swin"]["commits"][0]
    assert done.stdout.strip() == f"{fake_hub.url}/org/tiny-swin/commit/{commit['oid']}"
    assert fake_hub.repos["org/tiny-swin"]["private"] is True and commit["revision"] == "release"
    uploaded = fake_hub.files("org/tiny-swin", "release")
    weights = load_file(tiny_swin_dir / "model.safetensors")
    back = load_file(uploaded / "model.safetensors")
    assert all(torch.equal(back[k], weights[k]) for k in weights) and back.keys() == weights.keys()
    assert {"config.json", "preprocessor_config.json", "README.md"} <= {p.name for p in uploaded.iterdir()}
    assert "Bearer hf_env_token" in fake_hub.authorizations


# ---------------------------------------------------------------------------------------------------------- index
def test_update_index_adds_and_replaces_entries(tiny_swin_dir, tmp_path):
    cards = tmp_path / "model_cards"
    entry = hub.update_index(tiny_swin_dir, "tiny_swin_fmnist", model_cards_dir=cards)
    text = (cards / "index.yaml").read_text()
    assert text.startswith("# hf_vision_zoo")  # the explanatory header survives rewriting
    models = yaml.safe_load(text)["models"]
    assert models == [entry]
    assert entry["architecture"] == "swin" and entry["dataset"] == "fashion_mnist"
    assert entry["metrics"] == {"top1": 0.875, "top5": 0.996}
    assert entry["params"] == 35201 and entry["input_size"] == [32, 32] and entry["num_labels"] == 5
    assert entry["paper"]["url"] == "https://arxiv.org/abs/2103.14030" and entry["license"] == "mit"
    assert entry["card"] == "tiny_swin_fmnist.md" and entry["weights"] is None
    assert (cards / "tiny_swin_fmnist.md").read_text() == (tiny_swin_dir / "README.md").read_text()

    hub.write_model_card(tiny_swin_dir, dataset_name="fashion_mnist", metrics={"top1": 0.9}, training_args={})
    hub.update_index(tiny_swin_dir, "tiny_swin_fmnist", model_cards_dir=cards, repo_id="org/tiny-swin")
    hub.update_index(tiny_swin_dir, "another", model_cards_dir=cards)
    models = hub.read_index(cards / "index.yaml")
    assert [m["name"] for m in models] == ["tiny_swin_fmnist", "another"]
    assert models[0]["metrics"] == {"top1": 0.9} and models[0]["weights"] == "org/tiny-swin"
    hub.update_index(tiny_swin_dir, "tiny_swin_fmnist", model_cards_dir=cards)  # re-index keeps the repo id
    assert hub.read_index(cards / "index.yaml")[0]["weights"] == "org/tiny-swin"
    assert "value: 0.9\n" in (cards / "tiny_swin_fmnist.md").read_text()


def test_update_index_refuses_incomplete_folder_and_bad_names(tiny_swin_dir, tmp_path):
    with pytest.raises(ValueError, match="index name"):
        hub.update_index(tiny_swin_dir, "../escape", model_cards_dir=tmp_path)
    (tiny_swin_dir / "README.md").unlink()
    with pytest.raises(hub.CheckpointError):
        hub.update_index(tiny_swin_dir, "ok_name", model_cards_dir=tmp_path)
    assert not (tmp_path / "index.yaml").exists()


def test_shipped_index_is_valid():
    index = REPO_ROOT / "model_cards" / "index.yaml"
    assert index.read_text().startswith("# hf_vision_zoo")
    for entry in hub.read_index(index):
        assert (index.parent / entry["card"]).is_file()
        assert {"name", "architecture", "dataset", "metrics", "params", "paper", "card"} <= set(entry)
