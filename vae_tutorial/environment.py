"""Switches read from the environment, so a notebook, the CLI and CI agree on them.

- ``VAE_TUTORIAL_QUICK=1``: quick mode. Notebooks shrink epochs and data so that the whole
  series runs in a few minutes (CI uses it); every cell still runs and means the same.
- ``VAE_TUTORIAL_DATA_DIR``: a local directory holding dataset files, for offline work.
- ``VAE_TUTORIAL_OFFLINE=1``: never try to download; use the data directory or the bundled sample.

Taught in notebook 00_index.
"""

from __future__ import annotations

import os
from pathlib import Path

QUICK_ENV = "VAE_TUTORIAL_QUICK"
DATA_DIR_ENV = "VAE_TUTORIAL_DATA_DIR"
OFFLINE_ENV = "VAE_TUTORIAL_OFFLINE"

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def quick_mode() -> bool:
    """True when ``VAE_TUTORIAL_QUICK`` is set to 1 (true/yes/on). Taught in notebook 00_index."""
    return _flag(QUICK_ENV)


def offline() -> bool:
    """True when ``VAE_TUTORIAL_OFFLINE`` is set: downloads are not attempted."""
    return _flag(OFFLINE_ENV)


def data_dir() -> Path | None:
    """The directory named by ``VAE_TUTORIAL_DATA_DIR``, or None when it is unset."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None
