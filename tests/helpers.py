"""Tiny data and a tiny model shared by the fit tests (test_fit.py, test_collapse.py) and by
the fresh process of test_fit's SIGKILL test; the in-process CLI error check of test_cli.py and
test_ood.py; the CLI in a subprocess, as a user runs it, for the CLI tests. A plain module,
not a test module, so no test module imports another: tests/ has no __init__.py, and pytest's
default import mode puts it on sys.path (as for conftest.py), so ``from helpers import ...``
finds it."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from vae_tutorial import VAE, cli

REPO = Path(__file__).resolve().parents[1]


# The keys of one epoch's record in fit's history (and the CLI's metrics.json), in order.
EPOCH_KEYS = [
    "epoch",
    "train_loss",
    "reconstruction",
    "kl",
    "beta",
    "test_elbo",
    "seconds",
    "images_per_second",
]


def images(n, seed=0):
    """Blobby uint8 images: random, but with enough structure to learn something."""
    rng = np.random.default_rng(seed)
    means = rng.integers(0, 256, size=(4, 28, 28))
    picks = rng.integers(0, 4, size=n)
    noise = rng.integers(-40, 41, size=(n, 28, 28))
    return np.clip(means[picks] + noise, 0, 255).astype(np.uint8)


TRAIN, TEST = images(512), images(128, seed=1)
KILL_TRAIN = images(4096, seed=2)  # 512 steps of 8 per epoch: about a second


def small_vae(seed=0):
    keras.utils.set_random_seed(seed)
    return VAE(latent_dim=2, intermediate_dim=32)


def one_cli_error_line(args, capsys):
    """Run ``cli.main(args)`` in this process; require a failure told in one ``error:`` line
    on stderr, and return that line."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code not in (0, None)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def cli_process(*args, data_dir=None, env_extra=None) -> dict:
    """The keyword arguments that run ``python -m vae_tutorial ARGS`` in a fresh process,
    offline: on the bundled sample, or on the files in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if k != "VAE_TUTORIAL_DATA_DIR"}
    env.update(VAE_TUTORIAL_OFFLINE="1", **(env_extra or {}))
    if data_dir is not None:
        env["VAE_TUTORIAL_DATA_DIR"] = str(data_dir)
    args = [sys.executable, "-m", "vae_tutorial", *map(str, args)]
    return {"args": args, "env": env, "cwd": REPO, "text": True}


def run_cli(*args, data_dir=None, env_extra=None) -> subprocess.CompletedProcess:
    """The CLI run to its end (:func:`cli_process`), its output captured."""
    process = cli_process(*args, data_dir=data_dir, env_extra=env_extra)
    return subprocess.run(**process, capture_output=True, timeout=600)


def run_cli_here(monkeypatch, capsys, *args) -> subprocess.CompletedProcess:
    """``cli.main(ARGS)``, which ``python -m vae_tutorial ARGS`` calls, in this process, offline
    on the bundled sample as :func:`cli_process` sets up a fresh one: a follow-up run without a
    second TensorFlow start-up. Its exit code and output, as :func:`run_cli` returns them."""
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
    capsys.readouterr()  # only this run's output
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["vae_tutorial", *map(str, args)], code, out, err)


def start_cli(*args, data_dir=None) -> subprocess.Popen:
    """The CLI started (:func:`cli_process`), to be signalled while it runs."""
    process = cli_process(*args, data_dir=data_dir)
    return subprocess.Popen(**process, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
