"""Shared fixtures: seeded randomness and where the full Fashion-MNIST is, if anywhere.

Most tests use the MNIST sample bundled with the package. The few that need the complete
Fashion-MNIST read it from ``VAE_TUTORIAL_TEST_DATA`` (default: ``../shared/data`` beside
the repository), a folder holding ``fashion-mnist/`` with its four IDX files; without it
they are skipped.
"""

import os
from pathlib import Path

import keras
import pytest

SHARED_DATA = Path(
    os.environ.get("VAE_TUTORIAL_TEST_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
)
NO_FASHION_MNIST = (
    f"needs the full Fashion-MNIST, not found in {SHARED_DATA / 'fashion-mnist'}; set "
    "VAE_TUTORIAL_TEST_DATA to a folder holding fashion-mnist/ with its four IDX files"
)


def pytest_collection_modifyitems(items):
    """Every notebook cell nbval collects (``pytest tests notebooks``, as make test runs it)
    is ``slow``: a notebook runs in its own kernel, TensorFlow's start-up included."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def shared_data() -> Path:
    """The folder holding ``fashion-mnist/`` (see the module docstring), or a skip."""
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(NO_FASHION_MNIST)
    return SHARED_DATA
