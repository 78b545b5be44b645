"""Set-up checks: the install files agree with pyproject.toml, and the notebooks are clean.

(a) environment.yml (conda) and binder/requirements.txt + binder/runtime.txt pin versions that
    pyproject.toml's dependency specifiers accept, and a Python that requires-python accepts.
(b) Every notebooks/*.ipynb is committed executed, without errors, with the python3 kernel,
    and its first markdown cell links to Binder and Colab for that very notebook.
(c) `make lab`, Binder and the browser test start JupyterLab with the classroom settings in
    binder/jupyter/lab/settings/, which the installed JupyterLab's schemas accept.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
# The lessons and their solutions (notebooks/solutions/), not Jupyter's autosave copies.
NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

# Compared everywhere they are pinned. tensorflow-cpu and tensorflow are one package here.
CHECKED = ("tensorflow", "keras", "numpy", "matplotlib", "tensorboard")
ALIASES = {"tensorflow-cpu": "tensorflow", "matplotlib-base": "matplotlib"}


def _links():
    spec = importlib.util.spec_from_file_location("links", ROOT / "tools" / "links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _name(raw: str) -> str:
    name = canonicalize_name(raw)
    return ALIASES.get(name, name)


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _pyproject_specs() -> dict[str, SpecifierSet]:
    """Name -> specifier of the Linux dependencies (tensorflow-cpu stands for tensorflow)."""
    specs: dict[str, SpecifierSet] = {}
    for line in _pyproject()["project"]["dependencies"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        specs[_name(req.name)] = req.specifier
    return specs


def _versions_to_check(spec: SpecifierSet) -> list[Version]:
    """The versions a pin stands for: X.Y.0 for ==X.Y.*, the version for ==X.Y.Z, lower bounds."""
    versions = []
    for s in spec:
        if s.operator in ("==", "===", ">=", "~=", "="):
            versions.append(Version(s.version.removesuffix(".*")))
    return versions


def _conda_spec(text: str) -> tuple[str, SpecifierSet]:
    """Parse a conda match spec such as ``numpy>=1.26`` or ``python=3.11`` (= means ==X.*)."""
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip())
    name, rest = m.group(1), m.group(2).replace(" ", "")
    if re.fullmatch(r"=[0-9][0-9.]*", rest):
        rest = f"=={rest[1:]}.*"
    return name, SpecifierSet(rest)


def _environment_yml() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet], list[str]]:
    """(conda deps, pip deps, raw pip lines) from environment.yml, parsed without PyYAML."""
    conda, pip, pip_raw = {}, {}, []
    in_pip = False
    in_deps = False
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            in_deps = line.startswith("dependencies:")
            in_pip = False
            continue
        if not in_deps:
            continue
        item = line.strip()
        if item == "- pip:":
            in_pip = True
            continue
        if not item.startswith("- "):
            continue
        item = item[2:].strip().strip("\"'")
        indent = len(line) - len(line.lstrip())
        if in_pip and indent > 4:
            pip_raw.append(item)
            if not item.startswith("-"):
                req = Requirement(item)
                pip[_name(req.name)] = req.specifier
        else:
            in_pip = False
            name, spec = _conda_spec(item)
            conda[_name(name)] = spec
    return conda, pip, pip_raw


def _binder_requirements() -> dict[str, SpecifierSet]:
    reqs = {}
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            reqs[_name(req.name)] = req.specifier
    return reqs


def _assert_agrees(where: str, name: str, pinned: SpecifierSet, wanted: SpecifierSet) -> None:
    versions = _versions_to_check(pinned)
    assert versions, f"{where}: {name}{pinned} gives no version to check; pin it with == or >="
    for v in versions:
        assert v in wanted, (
            f"{where} pins {name}{pinned}, but pyproject.toml asks for {name}{wanted}: "
            "update one of them so they agree"
        )


def test_pyproject_names_every_checked_dependency():
    specs = _pyproject_specs()
    missing = [n for n in CHECKED if n not in specs]
    assert not missing, f"pyproject.toml dependencies lack {missing}"


@pytest.mark.parametrize("name", CHECKED)
def test_binder_pins_agree_with_pyproject(name):
    binder = _binder_requirements()
    assert name in binder, f"binder/requirements.txt does not pin {name}"
    _assert_agrees("binder/requirements.txt", name, binder[name], _pyproject_specs()[name])


def test_binder_installs_tensorflow_cpu_and_the_package_without_deps():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert re.search(r"^tensorflow-cpu==", text, re.M), "Binder has no GPU: use tensorflow-cpu"
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable (chmod +x)"
    assert "pip install --no-deps -e ." in post.read_text()


@pytest.mark.parametrize("name", CHECKED)
def test_environment_yml_pins_agree_with_pyproject(name):
    conda, pip, _ = _environment_yml()
    pinned = pip.get(name, conda.get(name))
    assert pinned is not None, f"environment.yml does not list {name}"
    _assert_agrees("environment.yml", name, pinned, _pyproject_specs()[name])


# (sys_platform, platform_machine) of the laptops the README promises: Linux and Windows on
# x86-64, Apple-silicon Macs, ARM Linux (e.g. a Raspberry Pi 5).
PLATFORMS = [("linux", "x86_64"), ("win32", "AMD64"), ("darwin", "arm64"), ("linux", "aarch64")]


def _selected(lines: list[str], sys_platform: str, machine: str) -> set[str]:
    """The requirements (name and specifier, no marker) that pip installs on that platform."""
    environment = {"sys_platform": sys_platform, "platform_machine": machine}
    chosen = set()
    for line in lines:
        if line.startswith("-"):  # -e . and other pip options
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(environment):
            chosen.add(f"{canonicalize_name(req.name)}{req.specifier}")
    return chosen


@pytest.mark.parametrize("platform", PLATFORMS, ids="-".join)
def test_environment_yml_installs_what_pyproject_does_on_each_platform(platform):
    pyproject = _selected(_pyproject()["project"]["dependencies"], *platform)
    _, _, pip_raw = _environment_yml()
    from_pip_section = _selected(pip_raw, *platform)
    tensorflow = {r for r in pyproject if r.startswith("tensorflow") and "board" not in r}
    assert len(tensorflow) == 1, f"pyproject.toml selects {tensorflow} on {platform}"
    assert tensorflow <= from_pip_section, (
        f"on {platform} pyproject.toml installs {tensorflow} but environment.yml's pip section "
        f"installs {from_pip_section}: give both the same environment markers"
    )
    for requirement in from_pip_section:
        assert requirement in pyproject, (
            f"environment.yml installs {requirement} on {platform}, pyproject.toml does not"
        )


def test_environment_yml_channels_and_package():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^name:\s*vae-tutorial\s*$", text, re.M)
    channels = re.search(r"^channels:\n((?:\s+-.*\n)+)", text, re.M).group(1)
    assert [c.strip("- ").strip() for c in channels.splitlines()] == ["conda-forge"]
    _, _, pip_raw = _environment_yml()
    assert "-e ." in pip_raw or "." in pip_raw, "environment.yml must pip-install the package"


def test_python_versions_agree_with_requires_python():
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    conda, _, _ = _environment_yml()
    assert "python" in conda, "environment.yml must pin python"
    for v in _versions_to_check(conda["python"]):
        assert v in requires, f"environment.yml python {v} is outside requires-python {requires}"
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert m, f"binder/runtime.txt should read like 'python-3.11', not {runtime!r}"
    assert Version(m.group(1)) in requires
    assert Version(m.group(1)) in conda["python"], "Binder and conda should use the same Python"


# -- JupyterLab's classroom settings -----------------------------------------------------------

LAB_SETTINGS = "binder/jupyter/lab/settings"  # overrides.json and page_config.json


def test_make_lab_binder_and_the_browser_test_use_the_classroom_settings():
    makefile = (ROOT / "Makefile").read_text()
    assert f"LAB_SETTINGS := {LAB_SETTINGS}" in makefile
    assert '--LabApp.app_settings_dir="$(CURDIR)/$(LAB_SETTINGS)"' in makefile
    post = (ROOT / "binder" / "postBuild").read_text()
    for name in ("overrides.json", "page_config.json"):
        assert f"{LAB_SETTINGS}/{name}" in post, f"binder/postBuild does not install {name}"
    conftest = (ROOT / "tests" / "browser" / "conftest.py").read_text()
    folders = " / ".join(f'"{part}"' for part in LAB_SETTINGS.split("/"))
    assert f"APP_SETTINGS = ROOT / {folders}\n" in conftest
    assert "--LabApp.app_settings_dir={APP_SETTINGS}" in conftest


def test_classroom_settings_are_valid_for_the_installed_jupyterlab():
    """Each override names a real plugin and setting, with a value its schema accepts."""
    commands = pytest.importorskip("jupyterlab.commands")
    jsonschema = pytest.importorskip("jsonschema")
    schemas = Path(commands.get_app_dir()) / "schemas"
    overrides = json.loads((ROOT / LAB_SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    for plugin, values in overrides.items():
        package, _, name = plugin.partition(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        jsonschema.validate(values, schema)  # additionalProperties: false catches a wrong name
    page_config = json.loads((ROOT / LAB_SETTINGS / "page_config.json").read_text())
    assert page_config == {"buildAvailable": False, "buildCheck": False}


# -- notebook hygiene --------------------------------------------------------------------------


NO_NOTEBOOKS = "notebooks/ holds no .ipynb yet: the hygiene checks have nothing to check"


@pytest.fixture(params=NOTEBOOKS or [None], ids=lambda p: p.name if p else "no-notebooks")
def notebook(request) -> Path:
    if request.param is None:
        pytest.skip(NO_NOTEBOOKS)
    return request.param


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_notebooks():
    if not NOTEBOOKS:
        pytest.skip(NO_NOTEBOOKS)
    assert any(p.name == "00_index.ipynb" for p in NOTEBOOKS), "notebooks/00_index.ipynb missing"


def test_notebook_is_committed_executed_without_errors(notebook):
    path = notebook
    nb = _load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert code, f"{path.name} has no code cells"
    unexecuted = [
        i for i, c in enumerate(nb["cells"]) if c in code and c["execution_count"] is None
    ]
    assert not unexecuted, (
        f"{path.name}: cells {unexecuted} were never run; nbval skips unexecuted cells. "
        "Restart the kernel, run all cells, save, then commit."
    )
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..{len(code)}: "
        "restart the kernel and run all cells top to bottom before saving"
    )
    errors = [
        (i, o.get("ename"))
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: error outputs in cells {errors}"


def test_notebook_uses_python3_kernel(notebook):
    path = notebook
    kernelspec = _load(path).get("metadata", {}).get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{path.name}: kernelspec name is {kernelspec.get('name')!r}; set it to 'python3' "
        "(a venv-specific kernel name breaks nbval, Binder and Colab)"
    )


def test_first_markdown_cell_links_to_binder_and_colab(notebook):
    path = notebook
    name = path.relative_to(NOTEBOOK_DIR).as_posix()
    links = _links()
    cells = [c for c in _load(path)["cells"] if c["cell_type"] == "markdown"]
    assert cells, f"{name} has no markdown cell"
    first = "".join(cells[0]["source"])
    rel = f"notebooks/{name}"
    for label, url in (("Binder", links.binder_url(rel)), ("Colab", links.colab_url(rel))):
        assert url in first, (
            f"{name}: the first markdown cell lacks the {label} link {url}. "
            f"`python tools/links.py --badges {rel}` prints the badge line to paste."
        )


COLAB_INSTALL = (
    'if "google.colab" in sys.modules:',
    '%pip install --quiet --no-deps "vae_tutorial @ git+https://github.com/',
)


def test_first_code_cell_installs_the_package_on_colab_only(notebook):
    code = [c for c in _load(notebook)["cells"] if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    for part in COLAB_INSTALL:
        assert part in first, (
            f"{notebook.name}: the first code cell should install vae_tutorial on Colab only "
            f"(copy the first code cell of notebooks/00_index.ipynb); it lacks {part!r}"
        )


def test_committed_outputs_hold_no_logs_or_escape_codes(notebook):
    noise = {
        "TensorFlow start-up log": re.compile(r"oneDNN custom operations|absl::InitializeLog"),
        "TensorFlow C++ warning": re.compile(r"^[WE]\d{4} .*\.cc:\d+\]", re.M),
        "ANSI escape code": re.compile("\x1b\\["),
        "download-failure text": re.compile(r"Name or service not known|Downloading data from"),
    }
    found = [
        (i, what)
        for i, cell in enumerate(_load(notebook)["cells"])
        for output in cell.get("outputs", [])
        for what, pattern in noise.items()
        if pattern.search("".join(output.get("text", "")))
    ]
    assert not found, f"{notebook.name}: committed outputs hold logs (cell, kind): {found}"
