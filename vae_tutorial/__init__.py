"""vae_tutorial: the tested building blocks of the vae-tutorial notebook series.

Every public function says which notebook teaches it. Start with ``notebooks/00_index.ipynb``.
"""

import os

# TensorFlow's C++ start-up chatter buries the first lines a learner should read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vae_tutorial.config import quick_mode  # noqa: E402

# -- losses, models, training step, evaluation --
# -- data --
# -- training loop --
# -- plotting --

__version__ = "0.1.0"
