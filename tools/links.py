"""Binder and Colab links of the notebooks: the repository slug lives here, once.

The notebooks' first markdown cell, the README and tests/test_setup.py all use these URLs.
Print the badge lines for every notebook with::

    python tools/links.py            # all notebooks, solutions included
    python tools/links.py 01_reparameterization_trick.ipynb
    python tools/links.py solutions/03_the_model_solutions.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_SLUG = "vae-tutorial/vae-tutorial"  # GitHub owner/name
BRANCH = "main"
NOTEBOOK_DIR = "notebooks"

BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def binder_url(notebook: str) -> str:
    """Binder launch URL that opens ``notebooks/<notebook>`` in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{REPO_SLUG}/HEAD?urlpath=lab/tree/{NOTEBOOK_DIR}/{notebook}"


def colab_url(notebook: str) -> str:
    """Colab URL that opens ``notebooks/<notebook>`` from the main branch on GitHub."""
    return (
        f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/"
        f"{NOTEBOOK_DIR}/{notebook}"
    )


def badges_markdown(notebook: str) -> str:
    """The two badges, as one markdown line, for a notebook's first markdown cell."""
    return (
        f"[![Open in Colab]({COLAB_BADGE})]({colab_url(notebook)}) "
        f"[![Launch Binder]({BINDER_BADGE})]({binder_url(notebook)})"
    )


def main(argv: list[str]) -> int:
    folder = Path(NOTEBOOK_DIR)
    names = argv or sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb"))
    for name in names:
        name = Path(name).as_posix().removeprefix(f"{NOTEBOOK_DIR}/")
        print(f"{name}:\n{badges_markdown(name)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
