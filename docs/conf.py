"""Sphinx configuration of the course website (`make site`).

The notebooks are rendered from their committed outputs: nothing is executed. Where the launch
links point (repository and git ref) is read from binder/launch.json, the one place that says it.
"""

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

LAUNCH = json.loads((ROOT / "binder" / "launch.json").read_text())

project = "vae-tutorial"
author = "the vae-tutorial authors"
copyright = "the vae-tutorial authors, MIT licence"
html_title = "Variational autoencoders with TensorFlow's GradientTape"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Args: sections
    "sphinx.ext.mathjax",
    "course_site",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]

# Notebooks: shown as committed, never run; their Markdown outputs read as MyST (with math).
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
# A latent explorer's widget needs a kernel: the site shows its one plain line (and the static
# figures around it), and loads no widget scripts, which would come from a CDN.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js: dict = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# The package's API from its docstrings. Type hints naming other libraries (TensorFlow, NumPy)
# have no page here to link to; names of this package must resolve (nitpicky build).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpick_ignore_regex = [(r"py:.*", r"(?!vae_tutorial\b).*")]
# Return and argument types that are not exported (the API lists vt's names): the decoder
# distributions' and the learned priors' base classes, the hierarchical model's pass and the
# VQ-VAE's code-prior protocol.
nitpick_ignore = [
    ("py:class", "vae_tutorial.likelihoods.Likelihood"),
    ("py:class", "vae_tutorial.priors.GaussianMixturePrior"),
    ("py:class", "vae_tutorial.hierarchical.LadderPass"),
    ("py:class", "vae_tutorial.vqvae.CodePrior"),
]

# Equations: MathJax is served from this site (copied from the django-static-mathjax package at
# build time by course_site), so a page shows its equations without any network.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "repository_url": f"https://github.com/{LAUNCH['repository']}",
    "repository_branch": LAUNCH["ref"],
    "path_to_docs": "",  # notebooks/NN_name is the page and the file in the repository
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
    "show_toc_level": 2,
    # One search box: the sidebar's (the theme's default also puts one in the top bar).
    "navbar_persistent": [],
}
html_last_updated_fmt = None
html_context = {"default_mode": "auto"}  # light or dark as the reader's system says
