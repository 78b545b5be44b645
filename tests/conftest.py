"""Shared fixtures: seeded randomness and where the full Fashion-MNIST is, if anywhere.

Most tests use the MNIST sample bundled with the package. The few that need the complete
Fashion-MNIST read it from ``VAE_TUTORIAL_TEST_DATA`` (default: ``../shared/data`` beside
the repository), a folder holding ``fashion-mnist/`` with its four IDX files; without it
they are skipped.
"""

import os
from pathlib import Path

import vae_tutorial  # noqa: F401  first: it starts TensorFlow without its start-up notices

# isort: split

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


# Files that start TensorFlow clusters on ports they found free: run one after another.
_SHARED_PORTS = {
    "test_distributed.py",
    "11_distributed_training.ipynb",
    "11_distributed_training_solutions.ipynb",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """Every notebook cell nbval collects (``pytest tests notebooks``, as make test runs it)
    is ``slow``: a notebook runs in its own kernel, TensorFlow's start-up included.

    Under ``make test``'s ``--dist loadgroup`` each file is one unit on one worker (a
    notebook's cells in order, in one kernel; a module's fixtures built once), and the files
    that start TensorFlow clusters share one unit, so two never race for a free port. A test
    that names its own ``xdist_group`` keeps it.
    """
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xdist_group"):
            continue  # a test that names its own group (one assignment, one notebook variation)
        group = "tf-cluster-ports" if item.path.name in _SHARED_PORTS else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def shared_data() -> Path:
    """The folder holding ``fashion-mnist/`` (see the module docstring), or a skip."""
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(NO_FASHION_MNIST)
    return SHARED_DATA
