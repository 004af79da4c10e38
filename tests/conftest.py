"""Shared pytest setup for the whole suite.

The environment is made offline *before* anything imports huggingface_hub / transformers / datasets, so no test can
reach the Hub by accident (DESIGN.md §6).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# `tests/common` (the shared tester) is imported as `common` whatever the import mode or working directory.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import hf_vision_zoo  # noqa: E402,F401  (registers the zoo with the Auto classes)

_PHOTOS = ("astronaut", "chelsea", "coffee")


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real RGB photographs from scikit-image (astronaut 512x512, chelsea 300x451, coffee 400x600)."""
    return {name: _photo(name) for name in _PHOTOS}


@pytest.fixture(scope="session")
def photo(photos) -> Image.Image:
    """One real, non-square RGB photograph (chelsea the cat, 451x300)."""
    return photos["chelsea"]


@pytest.fixture
def seed():
    """Seed torch (and numpy) so random weights and inputs are reproducible; returns the seed."""
    value = 0
    torch.manual_seed(value)
    np.random.seed(value)
    return value


@pytest.fixture
def tmp_dir(tmp_path):
    """A fresh temporary directory (a `pathlib.Path`), removed by pytest afterwards."""
    return tmp_path


@pytest.fixture(autouse=True, scope="session")
def _quiet_transformers():
    """Keep the loading reports and progress bars of transformers out of the test output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    yield
