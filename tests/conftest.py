"""Shared fixtures: seeded randomness and the location of the offline datasets."""

from pathlib import Path

import keras
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository: real MNIST test split and Fashion-MNIST."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"offline datasets not found at {SHARED_DATA}")
    return SHARED_DATA
