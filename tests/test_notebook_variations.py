"""Notebooks run top to bottom with a setting a learner would change: another seed, twice the
epochs, a larger latent space. Each runs in quick mode on the bundled sample; a claim that
fails here is an outcome checked as if it were an identity (CONTRIBUTING.md)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

VARIATIONS = [
    ("05_training_on_mnist.ipynb", "SEED = 1"),
    ("06_latent_space.ipynb", "LATENT_DIM_BIG = 16"),
    ("07_convolutional_vae.ipynb", "EPOCHS = 2 * EPOCHS"),
    ("09_beta_and_posterior_collapse.ipynb", "SEED = 1"),
    ("10_conditional_vae.ipynb", "EPOCHS = 2 * EPOCHS"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "change"),
    # each its own xdist group: five notebooks of half a minute spread over the workers
    [pytest.param(*v, marks=pytest.mark.xdist_group(f"variation-{v[0]}")) for v in VARIATIONS],
)
def test_a_notebook_runs_with_a_setting_a_learner_would_change(name, change, monkeypatch):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    parameters = next(
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and re.search(r"^SEED = ", cell.source, re.MULTILINE)
    )
    parameters.source += f"\n{change}  # the learner's change\n"
    monkeypatch.setenv("VAE_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    client = NotebookClient(
        notebook,
        timeout=900,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        shutdown_kernel="immediate",  # not TensorFlow's own shutdown, a second or two
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
