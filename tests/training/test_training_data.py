"""Data loading for training: Fashion-MNIST from the Debian idx files, image folders (empty and corrupt ones), Hub names
offline, transforms (processor-based eval, seeded train augmentation, grey/RGBA/1-channel), mixup/cutmix, sampler."""

import gzip
import random
import struct
import warnings

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import write_image_folder

import hf_vision_zoo
from hf_vision_zoo.training import data as D


# ------------------------------------------------------------------------------------------------ Fashion-MNIST
def _write_idx(path, array: np.ndarray):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_subset_is_the_real_data(fmnist_arrays):
    train_x, train_y, test_x, test_y = fmnist_arrays
    data = D.load_fashion_mnist(max_train_samples=300, max_eval_samples=100)
    assert isinstance(data.train, datasets.Dataset) and len(data.train) == 300 and len(data.eval) == 100
    assert isinstance(data.train.features["image"], datasets.Image)
    assert data.train.features["label"].names == D.FASHION_MNIST_CLASSES
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    rows = data.train[[0, 5, 299]]
    for image, label, index in zip(rows["image"], rows["label"], (0, 5, 299)):
        assert image.size == (28, 28) and image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), train_x[index])  # lossless
        assert label == train_y[index]
    np.testing.assert_array_equal(np.asarray(data.eval[99]["image"]), test_x[99])
    assert set(data.train["label"]) == set(range(10))


def test_fashion_mnist_full_size():
    data = D.load_fashion_mnist()
    assert (len(data.train), len(data.eval)) == (60000, 10000)
    assert np.bincount(data.eval["label"]).tolist() == [1000] * 10


def test_fashion_mnist_env_override_and_clear_error_when_missing(tmp_path, monkeypatch, fmnist_arrays):
    train_x, train_y, test_x, test_y = fmnist_arrays
    folder = tmp_path / "fm"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", train_x[:20])
    _write_idx(folder / "train-labels-idx1-ubyte.gz", train_y[:20])
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x[:10])
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y[:10])
    monkeypatch.setenv(D.FASHION_MNIST_ENV, str(folder))
    data = D.load_classification_dataset("fashion_mnist")
    assert (len(data.train), len(data.eval)) == (20, 10)

    monkeypatch.setenv(D.FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(D.DataError, match="apt-get install dataset-fashion-mnist"):
        D.load_fashion_mnist()


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path, fmnist_arrays):
    good = tmp_path / "x-idx3-ubyte.gz"
    _write_idx(good, fmnist_arrays[0][:5])
    np.testing.assert_array_equal(D.read_idx(good), fmnist_arrays[0][:5])
    truncated = tmp_path / "t-idx3-ubyte"
    truncated.write_bytes(gzip.decompress(good.read_bytes())[:-30])
    with pytest.raises(D.DataError, match="truncated"):
        D.read_idx(truncated)
    bad_gzip = tmp_path / "b-idx3-ubyte.gz"
    bad_gzip.write_bytes(good.read_bytes()[:100])
    with pytest.raises(D.DataError, match="Could not read"):
        D.read_idx(bad_gzip)
    png = tmp_path / "p.png"
    Image.fromarray(fmnist_arrays[0][0]).save(png)
    with pytest.raises(D.DataError, match="not an idx file"):
        D.read_idx(png)


# ------------------------------------------------------------------------------------------------ image folders
def test_image_folder_with_splits(tmp_path, fmnist_arrays):
    train_x, train_y, test_x, test_y = fmnist_arrays
    write_image_folder(tmp_path, train_x, train_y, "train", per_class=6)
    write_image_folder(tmp_path, test_x, test_y, "test", per_class=3)
    data = D.load_classification_dataset(str(tmp_path))
    assert data.class_names == ["Sneaker", "T-shirt-top", "Trouser"]  # sorted folder names
    assert (len(data.train), len(data.eval), data.eval_split) == (18, 9, "test")
    assert data.skipped == {}
    image = data.train[0]["image"]
    assert isinstance(image, Image.Image) and image.size == (28, 28)


def test_image_folder_without_eval_split_holds_out_part_of_train(tmp_path, fmnist_arrays):
    write_image_folder(tmp_path, fmnist_arrays[0], fmnist_arrays[1], per_class=10)
    data = D.load_image_folder(tmp_path, validation_split=0.2, seed=3)
    assert (len(data.train), len(data.eval)) == (24, 6)
    assert sorted(np.bincount(data.eval["label"]).tolist()) == [2, 2, 2]  # stratified
    again = D.load_image_folder(tmp_path, validation_split=0.2, seed=3)
    assert list(again.eval["label"]) == list(data.eval["label"])


def test_folder_without_images_is_a_clear_error(tmp_path):
    with pytest.raises(D.DataError, match="No images found"):
        D.load_classification_dataset(str(tmp_path))
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(D.DataError, match="No images found"):
        D.load_image_folder(tmp_path)
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_image_folder(tmp_path / "missing")
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_classification_dataset(str(tmp_path / "missing" / "folder"))


def test_corrupt_and_truncated_images_are_counted_and_skipped(tmp_path, fmnist_arrays):
    files = write_image_folder(tmp_path, fmnist_arrays[0], fmnist_arrays[1], "train", per_class=5)
    write_image_folder(tmp_path, fmnist_arrays[2], fmnist_arrays[3], "test", per_class=2)
    truncated = files[0]
    truncated.write_bytes(truncated.read_bytes()[:60])
    garbage = files[0].parent / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.warns(UserWarning, match=r"Skipped 2 unreadable"):
        data = D.load_image_folder(tmp_path)
    assert len(data.train) == 15 - 1  # 15 written, one truncated (+ the garbage file, also skipped)
    assert sorted(p.split("/")[-1] for p in data.skipped["train"]) == sorted([truncated.name, "garbage.png"])
    assert "test" not in data.skipped
    for row in data.train:  # everything left decodes
        row["image"].load()


def test_without_verification_a_corrupt_image_is_an_error_naming_the_rows(tmp_path, fmnist_arrays):
    files = write_image_folder(tmp_path, fmnist_arrays[0], fmnist_arrays[1], per_class=3)
    files[1].write_bytes(files[1].read_bytes()[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no skipping warning: nothing is checked
        data = D.load_image_folder(tmp_path, verify_images=False, validation_split=0.3)
    processor = hf_vision_zoo.create_image_processor("swin", size={"height": 28, "width": 28}, do_center_crop=False)
    assert len(data.train) + len(data.eval) == 9  # nothing dropped
    with pytest.raises(D.DataError, match="Could not decode an image among dataset rows"):
        for split in (data.train, data.eval):
            dataset = D.TransformedDataset(split, D.EvalTransform(processor))
            for start in range(0, len(dataset), 4):
                dataset.__getitems__(list(range(start, min(start + 4, len(dataset)))))


def test_hub_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert D.hub_is_offline()
    with pytest.raises(D.DataError, match="offline"):
        D.load_classification_dataset("zoo-tests/no-such-dataset-anywhere")


# ------------------------------------------------------------------------------------------------ transforms
@pytest.fixture
def processor28():
    return hf_vision_zoo.create_image_processor("swin", size={"height": 28, "width": 28}, do_center_crop=False)


def test_fit_image_processor_to_model_size():
    base = hf_vision_zoo.create_image_processor("swin")  # 256 -> centre crop 224
    fitted = D.fit_image_processor(base, 32)
    assert fitted.do_center_crop and fitted.size.shortest_edge == 36 and fitted.crop_size.height == 32
    straight = D.fit_image_processor(hf_vision_zoo.create_image_processor("swin"), 28, crop_pct=1.0)
    assert not straight.do_center_crop and (straight.size.height, straight.size.width) == (28, 28)
    image = Image.fromarray(np.zeros((40, 50), np.uint8))
    assert straight(images=[image], return_tensors="pt")["pixel_values"].shape == (1, 3, 28, 28)


def test_eval_transform_is_the_image_processor_and_converts_grey_and_rgba(processor28, photo):
    transform = D.EvalTransform(processor28)
    grey = photo.convert("L")
    rgba = photo.convert("RGBA")
    out = transform([grey, rgba, photo])
    assert out.shape == (3, 3, 28, 28) and out.dtype == torch.float32
    expected = processor28(images=[grey.convert("RGB")], return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(out[0], expected)
    mean = torch.tensor(processor28.image_mean).view(3, 1, 1)
    std = torch.tensor(processor28.image_std).view(3, 1, 1)
    raw = out[0] * std + mean
    torch.testing.assert_close(raw[0], raw[1], atol=1e-5, rtol=0)  # grey -> identical RGB channels
    torch.testing.assert_close(out[1], out[2], atol=1e-5, rtol=0)  # opaque RGBA == RGB


def test_single_channel_models_get_single_channel_input(processor28, photo):
    transform = D.EvalTransform(processor28, num_channels=1)
    out = transform([photo, photo.convert("L")])
    assert out.shape == (2, 1, 28, 28)
    prep = D.Preprocessing.from_image_processor(processor28, 1)
    train = D.TrainTransform(prep, seed=0)(images=[photo], indices=[0], epoch=0)
    assert train.shape == (1, 1, 28, 28)


def test_train_transform_is_seeded_per_sample(processor28, photo):
    prep = D.Preprocessing.from_image_processor(processor28)
    transform = D.TrainTransform(prep, scale=(0.3, 1.0), seed=1)
    a = transform([photo, photo], indices=[3, 4], epoch=0)
    b = transform([photo], indices=[4], epoch=0)  # another batch composition, same sample -> same crop
    torch.testing.assert_close(a[1], b[0])
    assert not torch.allclose(a[0], a[1])  # different samples differ
    c = transform([photo], indices=[4], epoch=1)
    assert not torch.allclose(b[0], c[0])  # a new epoch, a new crop
    assert a.shape == (2, 3, 28, 28)
    # normalised with the processor's mean/std: unaugmented = processor output up to resize differences
    plain = D.TrainTransform(prep, augment=False)([photo], indices=[0], epoch=0)
    reference = processor28(images=[photo], return_tensors="pt")["pixel_values"]
    assert (plain - reference).abs().mean() < 0.05


def test_batched_crop_flip_geometry_is_exact(fmnist_arrays, processor28):
    """Small equal-size images take the one-grid_sample path: a full-image crop is the identity, a flip a flip."""
    images = [Image.fromarray(a) for a in fmnist_arrays[0][:6]]
    prep = D.Preprocessing.from_image_processor(processor28)
    plain = D.TrainTransform(prep, augment=False)(images, list(range(6)), epoch=0)
    whole = D.TrainTransform(prep, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0)(images, list(range(6)), epoch=0)
    torch.testing.assert_close(whole, plain, atol=1e-4, rtol=0)
    flipped = D.TrainTransform(prep, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0)(images, list(range(6)), epoch=0)
    torch.testing.assert_close(flipped, plain.flip(-1), atol=1e-4, rtol=0)
    assert plain.shape == (6, 3, 28, 28)
    torch.testing.assert_close(plain[:, 0] * 0.229 + 0.485, plain[:, 1] * 0.224 + 0.456, atol=1e-5, rtol=0)  # grey
    # a random crop of the batched path agrees with torchvision's resized_crop of the same box
    transform = D.TrainTransform(prep, scale=(0.3, 0.6), hflip=0.0, seed=5)
    cropped = transform(images[:1], [0], epoch=0)
    top, left, h, w = transform.crop_params(28, 28, random.Random(D.sample_seed(5, 0, 0)))
    import torchvision.transforms.v2.functional as TF

    reference = TF.resized_crop(torch.tensor(fmnist_arrays[0][0].copy())[None].float(), top, left, h, w, [28, 28],
                                interpolation=TF.InterpolationMode.BICUBIC, antialias=False)
    reference = D.normalize(reference.clamp(0, 255)[None].expand(-1, 3, -1, -1), prep)
    assert (cropped - reference).abs().mean() < 0.05


def test_mixed_grey_and_colour_batches(photo, processor28):
    prep = D.Preprocessing.from_image_processor(processor28)
    small = photo.resize((40, 30))
    out = D.TrainTransform(prep, seed=0)([small.convert("L"), small, small.convert("RGBA")], [0, 1, 2], epoch=0)
    assert out.shape == (3, 3, 28, 28) and torch.isfinite(out).all()


def test_crop_params_follow_scale_and_ratio():
    prep = D.Preprocessing(height=28, width=28, mean=[0.5], std=[0.5], num_channels=1)
    transform = D.TrainTransform(prep, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    rng = random.Random(0)
    for _ in range(200):
        top, left, h, w = transform.crop_params(100, 120, rng)
        assert 0 <= top and top + h <= 100 and 0 <= left and left + w <= 120
        assert 0.23 <= h * w / 12000 <= 0.52 and 0.45 <= w / h <= 2.2


def test_mixup_and_cutmix_targets():
    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).view(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    same, targets = D.mix_batch(x, y, 5, label_smoothing=0.1)
    assert same is x and torch.allclose(targets.sum(1), torch.ones(4))
    assert torch.allclose(targets[0], torch.tensor([0.92, 0.02, 0.02, 0.02, 0.02]))
    mixed, soft = D.mix_batch(x, y, 5, mixup_alpha=0.8, generator=torch.Generator().manual_seed(1))
    lam = soft[0, 0].item()
    assert 0 < lam < 1 and torch.allclose(mixed, lam * x + (1 - lam) * x.flip(0))
    assert torch.allclose(soft.sum(1), torch.ones(4)) and soft[0, 3].item() == pytest.approx(1 - lam)
    cut, soft = D.mix_batch(x, y, 5, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(2))
    pasted = (cut != x).any(dim=1).float().mean(dim=(1, 2))  # fraction of pixels taken from the partner
    assert torch.allclose(soft[:, y].diagonal(), 1 - pasted, atol=1e-6)
    again, _ = D.mix_batch(x, y, 5, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(cut, again)
    _, untouched = D.mix_batch(x, y, 5, mixup_alpha=1.0, prob=0.0)
    assert torch.equal(untouched, D.one_hot(y, 5))


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    sampler = D.EpochShuffleSampler(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and first == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(D.EpochShuffleSampler(50, seed=4)) != first
