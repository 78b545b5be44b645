"""The package's layout, as CONTRIBUTING.md states it: read from the source, no TensorFlow."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vae_tutorial"
README = PACKAGE.parent / "README.md"
LESSON_MODULES = (
    "losses", "likelihoods", "models", "convolutional", "conditional", "collapse", "step",
    "batching", "epochs", "evaluation", "diagnostics", "training",
)  # fmt: skip

# What a learner reads from fit down to the GradientTape: the code notebooks 01-05 teach.
FIT_TO_TAPE = ("losses", "models", "step", "batching", "epochs", "training", "evaluation")
FIT_TO_TAPE_MAX_LINES = 1200


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name under vae_tutorial (``fast.epochs``...)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        name = "" if name == "__init__" else name.removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import of the package's own modules."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vae_tutorial"):
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("vae_tutorial")]
    return found


@pytest.mark.parametrize("name", LESSON_MODULES)
def test_no_lesson_module_imports_the_speed_wing(name):
    wing = [m for m, names in imports(modules()[name]) if m.startswith("vae_tutorial.fast")]
    assert not wing, f"vae_tutorial/{name}.py imports {wing}; see CONTRIBUTING.md"


def test_no_module_imports_another_modules_private_name():
    private = [
        (name, module, imported)
        for name, tree in modules().items()
        for module, names in imports(tree)
        for imported in names
        if imported.startswith("_")
    ]
    assert not private, private


def test_the_readme_lists_every_module():
    first_cells = re.findall(r"^\| ([^|]+) \|", README.read_text(), flags=re.MULTILINE)
    listed = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    top_level = {name.split(".")[0] for name in modules() if name}  # fast/: one row
    assert top_level - listed == set(), "add these modules to the README's table"


def test_the_code_of_notebooks_01_to_05_stays_short():
    lines = {name: len((PACKAGE / f"{name}.py").read_text().splitlines()) for name in FIT_TO_TAPE}
    assert sum(lines.values()) <= FIT_TO_TAPE_MAX_LINES, (
        f"{sum(lines.values())} lines in {lines}: move what later lessons teach to their modules"
    )
