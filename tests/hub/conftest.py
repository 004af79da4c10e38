"""Fixtures of the hub/CLI tests (helpers in hub_testing.py): the loopback fake Hub and a tiny Swin checkpoint."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `hub_testing` imports whatever the import mode

from hub_testing import FakeHub, make_tiny_swin  # noqa: E402


@pytest.fixture
def fake_hub(tmp_path):
    hub = FakeHub(tmp_path / "fake_hub").start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="session")
def tiny_swin_template(tmp_path_factory) -> Path:
    return make_tiny_swin(tmp_path_factory.mktemp("tiny_swin") / "tiny-swin")


@pytest.fixture
def tiny_swin_dir(tiny_swin_template, tmp_path) -> Path:
    """A fresh copy per test (tests may break or publish it)."""
    return Path(shutil.copytree(tiny_swin_template, tmp_path / "tiny-swin"))
