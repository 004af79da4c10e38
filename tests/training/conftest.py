"""Fixtures of the training tests: a clean accelerate state around every test (its state is a process-wide
singleton) and real Fashion-MNIST images (Debian's dataset-fashion-mnist). Helpers live in training_helpers.py."""

import pytest

from hf_vision_zoo.training.data import find_fashion_mnist, read_idx


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process training run builds its own Accelerator; reset accelerate's singletons around tests."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="session")
def fmnist_arrays():
    """The first 2,000 train and 500 test images of the real Fashion-MNIST (uint8 arrays) and their labels."""
    folder = find_fashion_mnist()
    train_x = read_idx(folder / "train-images-idx3-ubyte.gz")[:2000]
    train_y = read_idx(folder / "train-labels-idx1-ubyte.gz")[:2000]
    test_x = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:500]
    test_y = read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:500]
    return train_x, train_y, test_x, test_y



@pytest.fixture(autouse=True, scope="session")
def _private_datasets_cache(tmp_path_factory):
    """`load_dataset("imagefolder")` writes Arrow caches; keep them out of ~/.cache."""
    import datasets

    old = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("hf_datasets_cache")
    yield
    datasets.config.HF_DATASETS_CACHE = old
