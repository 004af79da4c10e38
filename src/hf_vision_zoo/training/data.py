"""Image-classification data for the training loop, built with 🤗 `datasets`.

Three sources, all returning a `ClassificationData` (a train and an eval `datasets.Dataset` with an `Image` column
and a `ClassLabel` column):

- **Fashion-MNIST** (`load_fashion_mnist`), the built-in default, from Debian's `dataset-fashion-mnist` package
  (the original idx files under `/usr/share/datasets/fashion-mnist`; `HF_VISION_ZOO_FASHION_MNIST_DIR` points
  elsewhere). The 28x28 grey images are stored in the dataset as binary PGM (Netpbm): lossless, and ~10x cheaper to
  build and ~1.5x cheaper to decode than PNG, which matters on a 2-core CPU (70,000 images build in under a second).
- **An image folder** (`load_image_folder`): `load_dataset("imagefolder", data_dir=...)`, i.e.
  `DIR/[train|validation|test/]<label>/<image>`. A folder with no images is an error. **Corrupt or truncated
  image files are counted and skipped with a warning** (every image is decoded once when the folder is loaded;
  `verify_images=False` skips that pass, and a corrupt file met during training is then an error naming the rows).
- **A dataset on the Hub by name** (`load_hub_dataset`), only when online; offline it is a clear error (unless
  the dataset is already in the local `datasets` cache).

`load_classification_dataset(spec)` picks the source from a string: `fashion_mnist`, an existing directory, or a
Hub name. Transforms come from the model's image processor: evaluation calls the processor itself (exactly what
`pipeline("image-classification")` does); training applies random-resized-crop + horizontal flip with the
processor's interpolation, mean and std (`TrainTransform`), optionally preceded by the Brain-Score CrossViT
recipe's 90/180-degree rotations (`--rotation-invariance`) and random grayscale. Grey, RGBA, CMYK and palette images
are converted to RGB, or to "L" for a model with `num_channels=1`.

Training augmentation is seeded per sample from `(seed, epoch, index)`, so it does not depend on the order batches
are loaded in, on prefetching, on worker processes or on the number of processes - which is what lets `--resume`
continue exactly (see `loop.py`).
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

FASHION_MNIST_ENV = "HF_VISION_ZOO_FASHION_MNIST_DIR"
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # from `dpkg -L dataset-fashion-mnist`
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_NAMES = ("fashion_mnist", "fashion-mnist", "fashionmnist")
EVAL_SPLIT_NAMES = ("validation", "valid", "val", "test")


class DataError(ValueError):
    """Data the training loop cannot use: missing files, an empty folder, unknown columns or splits."""


@dataclass
class ClassificationData:
    """A train and an eval split with their image/label columns and class names."""

    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset
    class_names: list[str]
    name: str
    image_column: str = "image"
    label_column: str = "label"
    eval_split: str = "test"
    skipped: dict[str, list[str]] = field(default_factory=dict)  # split -> unreadable image files that were dropped

    @property
    def num_labels(self) -> int:
        return len(self.class_names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.class_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.class_names)}


# ----------------------------------------------------------------------------------------------- Fashion-MNIST
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not, into a numpy array; corrupt files raise DataError."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip raises BadGzipFile (an OSError) or EOFError on truncation
        raise DataError(f"Could not read idx file {path}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an idx file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise DataError(f"{path}: unknown idx element type 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} has {len(data)} bytes but its header {shape} implies {expected} (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the Fashion-MNIST idx files: `data_dir`, else `$HF_VISION_ZOO_FASHION_MNIST_DIR`, else the
    Debian package's `/usr/share/datasets/fashion-mnist`."""
    candidates = [Path(data_dir)] if data_dir else []
    if not candidates and os.environ.get(FASHION_MNIST_ENV):
        candidates = [Path(os.environ[FASHION_MNIST_ENV])]
    if not candidates:
        candidates = [Path(DEBIAN_FASHION_MNIST_DIR)]
    for folder in candidates:
        if all(_idx_file(folder, name) for names in FASHION_MNIST_FILES.values() for name in names):
            return folder
    where = candidates[0]
    raise DataError(
        f"Fashion-MNIST idx files not found in {where} (expected train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz). Install them with "
        f"`apt-get install dataset-fashion-mnist` (or `make data`), or set {FASHION_MNIST_ENV} to a folder holding "
        f"them."
    )


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _pgm_bytes(images: np.ndarray) -> list[bytes]:
    height, width = images.shape[1:]
    header = f"P5\n{width} {height}\n255\n".encode()
    return [header + image.tobytes() for image in images]


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, max_train_samples: int | None = None,
                       max_eval_samples: int | None = None) -> ClassificationData:
    """Fashion-MNIST (60,000 train / 10,000 test, 28x28 grey, 10 classes) as `datasets.Dataset`s with an `Image`
    column and a `ClassLabel` column carrying the real class names. `max_*_samples` keep the first N images (the
    files are already shuffled, so a prefix is class-balanced to within a few percent)."""
    import datasets

    folder = find_fashion_mnist(data_dir)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_CLASSES)})
    splits = {}
    for split, limit in (("train", max_train_samples), ("test", max_eval_samples)):
        images_name, labels_name = FASHION_MNIST_FILES[split]
        images = read_idx(_idx_file(folder, images_name))
        labels = read_idx(_idx_file(folder, labels_name))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"Fashion-MNIST {split} files in {folder} disagree: images {images.shape}, labels "
                            f"{labels.shape}")
        if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise DataError(f"Fashion-MNIST {split} labels in {folder} go up to {int(labels.max())}; expected 0-9")
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        splits[split] = datasets.Dataset.from_dict(
            {"image": [{"bytes": b, "path": None} for b in _pgm_bytes(images)], "label": labels.astype(np.int64)},
            features=features, split=split,
        )
    return ClassificationData(train=splits["train"], eval=splits["test"], class_names=list(FASHION_MNIST_CLASSES),
                              name="fashion_mnist", eval_split="test")


# ----------------------------------------------------------------------------------------------- image folders
def image_extensions() -> set[str]:
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    return {ext.lower() for ext in ImageFolder.EXTENSIONS}


def load_image_folder(data_dir: str | os.PathLike, *, verify_images: bool = True, eval_split: str | None = None,
                      validation_split: float = 0.1, seed: int = 42, max_train_samples: int | None = None,
                      max_eval_samples: int | None = None) -> ClassificationData:
    """An image folder through `load_dataset("imagefolder", data_dir=...)`: `DIR/<label>/<image>` or
    `DIR/<split>/<label>/<image>`. Without an eval split (validation/valid/val/test), `validation_split` of train
    is held out (stratified, seeded). Corrupt or truncated images are dropped with a warning (see the module doc)."""
    import datasets

    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"Image folder {folder} does not exist or is not a directory")
    extensions = image_extensions()
    if not any(p.suffix.lower() in extensions for p in folder.rglob("*") if p.is_file()):
        raise DataError(
            f"No images found in {folder}. Expected image files (.jpg, .png, ...) laid out as "
            f"{folder}/<label>/<image> or {folder}/<split>/<label>/<image>."
        )
    try:
        loaded = datasets.load_dataset("imagefolder", data_dir=str(folder))
    except Exception as err:  # datasets raises several types for unusable layouts
        raise DataError(f"Could not load image folder {folder} with datasets' imagefolder builder: {err}") from err
    image_column, label_column = _find_columns(loaded[next(iter(loaded))], None, None, source=str(folder))
    skipped: dict[str, list[str]] = {}
    if verify_images:
        for split in list(loaded):
            loaded[split], bad = drop_unreadable_images(loaded[split], image_column)
            if bad:
                skipped[split] = bad
        if skipped:
            total = sum(len(v) for v in skipped.values())
            examples = ", ".join(f for v in skipped.values() for f in v[:3])
            warnings.warn(f"Skipped {total} unreadable (corrupt or truncated) image file(s) in {folder}: {examples}"
                          + (" ..." if total > 3 else ""), stacklevel=2)
    data = _split_train_eval(loaded, name=str(folder), image_column=image_column, label_column=label_column,
                             eval_split=eval_split, validation_split=validation_split, seed=seed)
    data.skipped = skipped
    return _limit(data, max_train_samples, max_eval_samples)


def drop_unreadable_images(dataset, image_column: str = "image") -> tuple[Any, list[str]]:
    """Decode every image once; return the dataset without the unreadable ones and the names of those."""
    import datasets
    from PIL import Image

    raw = dataset.cast_column(image_column, datasets.Image(decode=False))
    bad_rows, bad_names = [], []
    for row, item in enumerate(raw[image_column]):
        try:
            source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
            with Image.open(source) as image:
                image.load()
        except Exception:  # noqa: BLE001  (PIL raises OSError, SyntaxError, ValueError, ... on bad files)
            bad_rows.append(row)
            bad_names.append(str(item.get("path") or f"row {row}"))
    if bad_rows:
        bad = set(bad_rows)
        dataset = dataset.select([i for i in range(len(dataset)) if i not in bad])
    return dataset, bad_names


# ----------------------------------------------------------------------------------------------- Hub datasets
def hub_is_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_DATASETS_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(v.upper() in ("1", "ON", "YES", "TRUE") for v in flags)


def load_hub_dataset(name: str, config: str | None = None, *, image_column: str | None = None,
                     label_column: str | None = None, eval_split: str | None = None, validation_split: float = 0.1,
                     seed: int = 42, max_train_samples: int | None = None,
                     max_eval_samples: int | None = None) -> ClassificationData:
    """A dataset on the Hugging Face Hub by name (`org/name`), e.g. `uoft-cs/cifar10`; needs the network unless it
    is already in the local `datasets` cache."""
    import datasets

    offline = hub_is_offline()
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as err:  # noqa: BLE001  (ConnectionError, FileNotFoundError, DatasetNotFoundError, ...)
        if offline:
            raise DataError(
                f"Dataset {name!r} is not a local folder or 'fashion_mnist', and the Hub cannot be reached offline "
                f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set) and it is not in the local datasets cache. Use "
                f"--dataset fashion_mnist, an image folder, or unset the offline variables when online."
            ) from err
        raise DataError(f"Could not load dataset {name!r} from the Hugging Face Hub: {err}") from err
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    first = loaded["train"] if "train" in loaded else loaded[next(iter(loaded))]
    image_column, label_column = _find_columns(first, image_column, label_column, source=name)
    data = _split_train_eval(loaded, name=name, image_column=image_column, label_column=label_column,
                             eval_split=eval_split, validation_split=validation_split, seed=seed)
    return _limit(data, max_train_samples, max_eval_samples)


# ----------------------------------------------------------------------------------------------- dispatch
def load_classification_dataset(spec: str = "fashion_mnist", *, config: str | None = None,
                                image_column: str | None = None, label_column: str | None = None,
                                eval_split: str | None = None, validation_split: float = 0.1, seed: int = 42,
                                max_train_samples: int | None = None, max_eval_samples: int | None = None,
                                verify_images: bool = True) -> ClassificationData:
    """`fashion_mnist` (Debian idx files), an existing directory (image folder), or a Hub dataset name."""
    if spec is None or str(spec).lower() in FASHION_MNIST_NAMES:
        return load_fashion_mnist(max_train_samples=max_train_samples, max_eval_samples=max_eval_samples)
    if Path(spec).exists():
        if not Path(spec).is_dir():
            raise DataError(f"--dataset {spec} is a file; give an image folder, 'fashion_mnist' or a Hub name")
        return load_image_folder(spec, verify_images=verify_images, eval_split=eval_split,
                                 validation_split=validation_split, seed=seed, max_train_samples=max_train_samples,
                                 max_eval_samples=max_eval_samples)
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace("/", "", 1):
        raise DataError(f"Dataset folder {spec} does not exist")
    return load_hub_dataset(spec, config, image_column=image_column, label_column=label_column,
                            eval_split=eval_split, validation_split=validation_split, seed=seed,
                            max_train_samples=max_train_samples, max_eval_samples=max_eval_samples)


def _find_columns(dataset, image_column: str | None, label_column: str | None, source: str) -> tuple[str, str]:
    import datasets

    features = dataset.features
    if image_column is None:
        images = [k for k, v in features.items() if isinstance(v, datasets.Image)]
        image_column = images[0] if images else next((k for k in ("image", "img") if k in features), None)
    if label_column is None:
        labels = [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)]
        label_column = labels[0] if labels else next((k for k in ("label", "labels") if k in features), None)
    for kind, column in (("image", image_column), ("label", label_column)):
        if column is None or column not in features:
            raise DataError(f"{source}: no {kind} column found among {list(features)}; pass --{kind}-column")
    return image_column, label_column


def _split_train_eval(loaded, *, name: str, image_column: str, label_column: str, eval_split: str | None,
                      validation_split: float, seed: int) -> ClassificationData:
    import datasets

    if "train" not in loaded:
        raise DataError(f"{name} has no 'train' split (splits: {list(loaded)})")
    train = loaded["train"]
    if not isinstance(train.features[label_column], datasets.ClassLabel):
        train = train.class_encode_column(label_column)
    class_names = list(train.features[label_column].names)
    if eval_split is None:
        eval_split = next((s for s in EVAL_SPLIT_NAMES if s in loaded), None)
    if eval_split is not None:
        if eval_split not in loaded:
            raise DataError(f"{name} has no split {eval_split!r} (splits: {list(loaded)})")
        evaluation = loaded[eval_split]
        if not isinstance(evaluation.features[label_column], datasets.ClassLabel):
            evaluation = evaluation.cast_column(label_column, train.features[label_column])
        elif list(evaluation.features[label_column].names) != class_names:
            raise DataError(f"{name}: the {eval_split} split's classes {evaluation.features[label_column].names} "
                            f"differ from train's {class_names}")
    else:
        if not 0.0 < validation_split < 1.0:
            raise DataError(f"{name} has no eval split; validation_split must be in (0, 1), got {validation_split}")
        if len(train) < 2:
            raise DataError(f"{name} has {len(train)} training image(s); need at least 2 to hold some out")
        try:
            parts = train.train_test_split(test_size=validation_split, seed=seed, stratify_by_column=label_column)
        except ValueError:  # too few images per class to stratify
            parts = train.train_test_split(test_size=validation_split, seed=seed)
        train, evaluation, eval_split = parts["train"], parts["test"], f"train[{validation_split:.0%} held out]"
    if len(train) == 0:
        raise DataError(f"{name}: the train split is empty")
    return ClassificationData(train=train, eval=evaluation, class_names=class_names, name=name,
                              image_column=image_column, label_column=label_column, eval_split=eval_split)


def _limit(data: ClassificationData, max_train: int | None, max_eval: int | None) -> ClassificationData:
    if max_train is not None and max_train < len(data.train):
        data.train = data.train.select(range(max_train))
    if max_eval is not None and max_eval < len(data.eval):
        data.eval = data.eval.select(range(max_eval))
    return data


# ----------------------------------------------------------------------------------------------- transforms
_INTERPOLATIONS = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}


@dataclass
class Preprocessing:
    """What the transforms take from an image processor, for a model with `num_channels` input channels."""

    height: int
    width: int
    mean: list[float]
    std: list[float]
    interpolation: str = "BICUBIC"
    rescale_factor: float = 1 / 255
    num_channels: int = 3

    @classmethod
    def from_image_processor(cls, processor, num_channels: int = 3) -> Preprocessing:
        size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
        height, width = _size_hw(size)
        mean = [float(v) for v in np.atleast_1d(np.asarray(processor.image_mean, dtype=float))]
        std = [float(v) for v in np.atleast_1d(np.asarray(processor.image_std, dtype=float))]
        if num_channels != len(mean):
            if num_channels == 1:
                mean, std = [float(np.mean(mean))], [float(np.mean(std))]
            elif len(mean) == 1:
                mean, std = mean * num_channels, std * num_channels
            else:
                raise DataError(f"The image processor normalises {len(mean)} channels but the model takes "
                                f"{num_channels}")
        resample = getattr(processor, "resample", 3)
        interpolation = _INTERPOLATIONS.get(int(resample), "BICUBIC") if resample is not None else "BICUBIC"
        if interpolation in ("BOX", "HAMMING", "LANCZOS"):
            interpolation = "BICUBIC"
        return cls(height=height, width=width, mean=mean, std=std, interpolation=interpolation,
                   rescale_factor=float(getattr(processor, "rescale_factor", 1 / 255) or 1 / 255),
                   num_channels=num_channels)

    @property
    def mode(self) -> str:
        return "L" if self.num_channels == 1 else "RGB"


def _size_hw(size) -> tuple[int, int]:
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    if get("height", None) and get("width", None):
        return int(get("height")), int(get("width"))
    if get("shortest_edge", None):
        return int(get("shortest_edge")), int(get("shortest_edge"))
    raise DataError(f"Cannot tell the model's input size from the image processor's size {size}")


def to_mode(image, mode: str):
    """A PIL image in `mode` ("RGB" or "L"): grey, palette, RGBA (alpha dropped onto white) and CMYK converted."""
    from PIL import Image

    if image.mode == mode:
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


def fit_image_processor(processor, image_size: int | tuple[int, int] | list[int], crop_pct: float | None = None):
    """Adapt a processor's size/crop to a model built for `image_size` (e.g. a 28 px Swin with the 224 px variant's
    processor): the processor resizes the short side to `image_size / crop_pct` and centre-crops `image_size`;
    `crop_pct=1` (or a processor without centre crop) resizes straight to `image_size`."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]),
                                                                                int(image_size[1]))
    if crop_pct is None:
        if getattr(processor, "do_center_crop", False):
            crop_h, _ = _size_hw(processor.crop_size)
            short_h, _ = _size_hw(processor.size)
            crop_pct = crop_h / short_h if short_h else 1.0
        else:
            crop_pct = 1.0
    if not 0.0 < crop_pct <= 1.0:
        raise DataError(f"crop_pct must be in (0, 1], got {crop_pct}")
    if crop_pct >= 1.0:
        processor.size = {"height": height, "width": width}
        processor.do_center_crop = False
        processor.crop_size = {"height": height, "width": width}
    else:
        processor.size = {"shortest_edge": int(math.floor(min(height, width) / crop_pct))}
        processor.do_center_crop = True
        processor.crop_size = {"height": height, "width": width}
    return _refresh_processor(processor)


def _refresh_processor(processor):
    """Re-create the processor from its dict so derived fields (SizeDict etc.) follow the new sizes."""
    return type(processor)(**{k: v for k, v in processor.to_dict().items()
                              if k not in ("image_processor_type", "processor_class")})


class EvalTransform:
    """Deterministic preprocessing for evaluation: the image processor itself (RGB models) or the same resize /
    crop / normalisation done with torchvision for single-channel models."""

    def __init__(self, processor, num_channels: int = 3):
        self.processor = processor
        self.prep = Preprocessing.from_image_processor(processor, num_channels)

    def __call__(self, images: list) -> torch.Tensor:
        images = [to_mode(image, self.prep.mode) for image in images]
        if self.prep.num_channels == 3:
            return self.processor(images=images, return_tensors="pt")["pixel_values"]
        import torchvision.transforms.v2.functional as TF

        proc = self.processor
        out = []
        for image in images:
            tensor = TF.pil_to_tensor(image)
            interpolation = getattr(TF.InterpolationMode, self.prep.interpolation)
            if getattr(proc, "do_center_crop", False):
                short = _size_hw(proc.size)[0]
                tensor = TF.resize(tensor, [short], interpolation=interpolation, antialias=True)
                tensor = TF.center_crop(tensor, [self.prep.height, self.prep.width])
            else:
                tensor = TF.resize(tensor, [self.prep.height, self.prep.width], interpolation=interpolation,
                                   antialias=True)
            out.append(tensor)
        return normalize(torch.stack(out), self.prep)


def normalize(batch: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (batch.float() * prep.rescale_factor - mean) / std


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that is a pure function of (seed, epoch, index) (splitmix64 mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x & (2**63 - 1)


class TrainTransform:
    """Random-resized-crop (torchvision's parameters) + horizontal flip, then the processor's normalisation.

    Randomness comes from a `random.Random` seeded with `(seed, epoch, index)` for every sample. A batch of
    equally-sized images no larger than twice the output is cropped, resized and flipped in one `grid_sample`
    (bicubic/bilinear as the processor says): ~4x cheaper than one `resized_crop` per image, which matters for
    Fashion-MNIST on a 2-core CPU. Other batches take the per-image antialiased path."""

    def __init__(self, prep: Preprocessing, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: float = 0.5, augment: bool = True, seed: int = 0,
                 rotation_invariance: bool = False, rotation_prob: float = 0.5, grayscale_prob: float = 0.0):
        if not 0.0 <= rotation_prob <= 1.0:
            raise ValueError(f"rotation probability must be in [0, 1], got {rotation_prob}")
        if not 0.0 <= grayscale_prob <= 1.0:
            raise ValueError(f"random-grayscale probability must be in [0, 1], got {grayscale_prob}")
        self.rotation_invariance, self.rotation_prob = bool(rotation_invariance), float(rotation_prob)
        self.grayscale_prob = float(grayscale_prob)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"random-resized-crop scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"random-resized-crop ratio must satisfy 0 < min <= max, got {ratio}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip probability must be in [0, 1], got {hflip}")
        self.prep, self.scale, self.ratio, self.hflip = prep, scale, ratio, hflip
        self.augment, self.seed = augment, seed

    def crop_params(self, height: int, width: int, rng: random.Random) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params, drawing from `rng`: (top, left, h, w)."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h), rng.randint(0, width - w), h, w
        in_ratio = width / height  # fallback: centre crop
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def rotate_and_grey(self, tensor: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """The Brain-Score CrossViT recipe's rotation invariance, applied before the crop as in its official
        `dataset.py`: `RandomApply([RandomRotation((90, 90))], p)` then `RandomApply([RandomRotation((180, 180))], p)`
        (counter-clockwise; with p = 0.5 each of 0/90/180/270 degrees has probability 1/4), then
        `RandomGrayscale(grayscale_prob)` (ITU-R 601-2 luma, kept 3-channel). A square image is rotated exactly
        (`torch.rot90`); a non-square one keeps its size as torchvision's `expand=False` does (corners cut, zero
        fill)."""
        if self.rotation_invariance:
            quarter_turns = 0
            if rng.random() < self.rotation_prob:
                quarter_turns += 1
            if rng.random() < self.rotation_prob:
                quarter_turns += 2
            quarter_turns %= 4
            if quarter_turns:
                if tensor.shape[-1] == tensor.shape[-2] or quarter_turns == 2:
                    tensor = torch.rot90(tensor, quarter_turns, dims=(-2, -1))
                else:
                    import torchvision.transforms.v2.functional as TF

                    tensor = TF.rotate(tensor, 90.0 * quarter_turns, interpolation=TF.InterpolationMode.NEAREST,
                                       expand=False, fill=0)
        if self.grayscale_prob > 0 and rng.random() < self.grayscale_prob and tensor.shape[0] == 3:
            import torchvision.transforms.v2.functional as TF

            tensor = TF.rgb_to_grayscale(tensor, num_output_channels=3)
        return tensor

    def _tensor(self, image) -> torch.Tensor:
        """uint8 (C, H, W); a grey image for an RGB model stays 1-channel here and is expanded at the end."""
        import torchvision.transforms.v2.functional as TF

        if not (self.prep.num_channels == 3 and image.mode == "L"):
            image = to_mode(image, self.prep.mode)
        return TF.pil_to_tensor(image)

    def __call__(self, images: list, indices: list[int], epoch: int) -> torch.Tensor:
        import torchvision.transforms.v2.functional as TF

        size = [self.prep.height, self.prep.width]
        interpolation = getattr(TF.InterpolationMode, self.prep.interpolation)
        tensors = [self._tensor(image) for image in images]
        if len({t.shape[0] for t in tensors}) > 1:  # grey next to colour images: expand the grey ones now
            tensors = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in tensors]
        rngs = [random.Random(sample_seed(self.seed, epoch, int(index))) for index in indices]
        if self.rotation_invariance or self.grayscale_prob > 0:
            tensors = [self.rotate_and_grey(t, rng) for t, rng in zip(tensors, rngs)]
        if not self.augment:
            out = [t if list(t.shape[-2:]) == size else TF.resize(t, size, interpolation=interpolation, antialias=True)
                   for t in tensors]
            return self._finish(out)
        params = []
        for tensor, rng in zip(tensors, rngs):
            crop = self.crop_params(tensor.shape[-2], tensor.shape[-1], rng)
            params.append((*crop, self.hflip > 0 and rng.random() < self.hflip))
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) == 1 and all(side <= 2 * out for side, out in zip(next(iter(shapes))[-2:], size)):
            return self._finish(self._batched(torch.stack(tensors), params))
        out = []
        for tensor, (top, left, h, w, flip) in zip(tensors, params):
            tensor = TF.resized_crop(tensor, top, left, h, w, size, interpolation=interpolation, antialias=True)
            out.append(TF.horizontal_flip(tensor) if flip else tensor)
        return self._finish(out)

    def _batched(self, batch: torch.Tensor, params: list) -> torch.Tensor:
        """All crops + resizes + flips of an equally-sized batch as one affine `grid_sample` (align_corners=False:
        output pixel centres spread evenly over each crop box, as a resize of the crop does)."""
        _, channels, height, width = batch.shape
        theta = torch.tensor([[[(w / width) * (-1.0 if flip else 1.0), 0.0, (2 * left + w) / width - 1.0],
                               [0.0, h / height, (2 * top + h) / height - 1.0]]
                              for top, left, h, w, flip in params], dtype=torch.float32)
        grid = F.affine_grid(theta, [len(params), channels, self.prep.height, self.prep.width], align_corners=False)
        mode = "bicubic" if self.prep.interpolation == "BICUBIC" else (
            "nearest" if self.prep.interpolation == "NEAREST" else "bilinear")
        out = F.grid_sample(batch.float(), grid, mode=mode, padding_mode="border", align_corners=False)
        return out.clamp_(0, 255)

    def _finish(self, tensors) -> torch.Tensor:
        batch = tensors if isinstance(tensors, torch.Tensor) else torch.stack(tensors)
        if batch.shape[1] == 1 and self.prep.num_channels == 3:
            batch = batch.expand(-1, 3, -1, -1)
        return normalize(batch, self.prep)


class TransformedDataset(torch.utils.data.Dataset):
    """A map-style torch dataset over a `datasets.Dataset`: batched fetch (`__getitems__`), then the transform.

    Yields dicts of `pixel_values`, `labels` and `index` (the row in the underlying dataset)."""

    def __init__(self, dataset, transform, image_column: str = "image", label_column: str = "label",
                 train: bool = False):
        self.dataset, self.transform, self.train = dataset, transform, train
        self.image_column, self.label_column = image_column, label_column
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]):
        indices = [int(i) for i in indices]
        try:
            rows = self.dataset[indices]
            images = rows[self.image_column]
            pixels = (self.transform(images, indices, self.epoch) if self.train else self.transform(images))
        except DataError:
            raise
        except Exception as err:
            if "image" in type(err).__name__.lower() or isinstance(err, (OSError, SyntaxError)):
                raise DataError(f"Could not decode an image among dataset rows {indices[:8]}"
                                f"{'...' if len(indices) > 8 else ''}: {err}. Load the folder with image "
                                f"verification on (the default) to skip unreadable files.") from err
            raise
        labels = rows[self.label_column]
        return [{"pixel_values": p, "labels": int(l), "index": i} for p, l, i in zip(pixels, labels, indices)]


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "labels": torch.tensor([s["labels"] for s in samples], dtype=torch.long),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
    }


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A shuffling sampler whose order is a pure function of (seed, epoch): identical on every process (so
    accelerate's per-process sharding partitions it) and reproducible when a run is resumed."""

    def __init__(self, num_samples: int, seed: int = 0):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


# ----------------------------------------------------------------------------------------------- mixup / cutmix
def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    off = smoothing / num_classes
    return torch.full((labels.shape[0], num_classes), off).scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def mix_batch(pixel_values: torch.Tensor, labels: torch.Tensor, num_classes: int, *, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0, prob: float = 1.0, switch_prob: float = 0.5, label_smoothing: float = 0.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-wise mixup / cutmix (timm's `Mixup`, mode "batch"): mixes each sample with the batch flipped, and
    returns the mixed pixels and soft targets (rows sum to 1). With both alphas 0 (or when the `prob` draw fails)
    the pixels are unchanged and the targets are (label-smoothed) one-hot."""
    targets = one_hot(labels, num_classes, label_smoothing).to(pixel_values.device)
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or pixel_values.shape[0] < 2:
        return pixel_values, targets
    if torch.rand(1, generator=generator).item() >= prob:
        return pixel_values, targets
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or torch.rand(1, generator=generator).item() < switch_prob)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = _beta(alpha, generator)
    flipped = pixel_values.flip(0)
    if use_cutmix:
        height, width = pixel_values.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy = int(torch.randint(0, height, (1,), generator=generator).item())
        cx = int(torch.randint(0, width, (1,), generator=generator).item())
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        pixel_values = pixel_values.clone()
        pixel_values[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)  # the area actually pasted
    else:
        pixel_values = pixel_values * lam + flipped * (1.0 - lam)
    return pixel_values, targets * lam + targets.flip(0) * (1.0 - lam)


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """Beta(alpha, alpha) from two Gamma draws made with `generator` (torch's Beta has no generator argument)."""
    g1 = _gamma(alpha, generator)
    g2 = _gamma(alpha, generator)
    return g1 / (g1 + g2) if g1 + g2 > 0 else 0.5


def _gamma(alpha: float, generator: torch.Generator | None) -> float:
    # Marsaglia-Tsang; for alpha < 1 use the boost Gamma(a) = Gamma(a + 1) * U^(1/a).
    boost = 1.0
    if alpha < 1.0:
        boost = torch.rand(1, generator=generator).item() ** (1.0 / alpha)
        alpha += 1.0
    d = alpha - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = torch.randn(1, generator=generator).item()
        v = (1.0 + c * x) ** 3
        if v <= 0:
            continue
        u = torch.rand(1, generator=generator).item()
        if math.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost


__all__ = [
    "ClassificationData", "DataError", "EpochShuffleSampler", "EvalTransform", "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV", "Preprocessing", "TrainTransform", "TransformedDataset", "collate", "drop_unreadable_images",
    "find_fashion_mnist", "fit_image_processor", "load_classification_dataset", "load_fashion_mnist",
    "load_hub_dataset", "load_image_folder", "mix_batch", "one_hot", "read_idx", "sample_seed", "to_mode",
]
