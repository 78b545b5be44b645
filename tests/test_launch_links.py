"""Every Binder and Colab launch link is built from binder/launch.json.

The README, the notebooks' markdown cells, the assignments and binder/ are searched for
mybinder.org and colab.research.google.com addresses; each must open launch.json's repository
at its ref (a release branch, never HEAD) and a path that exists here. `python tools/links.py`
rewrites them all from launch.json. No TensorFlow: these tests take well under a second.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_links():
    spec = importlib.util.spec_from_file_location("links", ROOT / "tools" / "links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


links = _load_links()
REPOSITORY, REF = links.launch_config()
FILES = links.files()


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_launch_json_names_a_repository_and_a_branch():
    owner, _, name = REPOSITORY.partition("/")
    assert owner and name and "/" not in name, f"repository {REPOSITORY!r} is not owner/name"
    assert REF and REF != "HEAD", f"ref {REF!r}: launch links open a release branch, not HEAD"


def test_the_search_finds_the_links():
    names = {_name(p) for p in FILES}
    assert {"README.md", "notebooks/00_index.ipynb"} <= names, names


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_every_launch_link_is_built_from_launch_json(path):
    problems = links.problems(path)
    assert not problems, (
        f"{_name(path)}:\n" + "\n".join(problems) + "\n`python tools/links.py` rewrites them"
    )


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_no_launch_link_opens_head(path):
    heads = [url for url in links.links(path) if (links.parse(url) or {}).get("ref") == "HEAD"]
    assert not heads, f"{_name(path)} has launch links to HEAD: {heads}"


def test_links_are_built_from_launch_json():
    path = "notebooks/00_index.ipynb"
    binder, colab = links.binder_url(path), links.colab_url(path)
    assert binder == f"https://mybinder.org/v2/gh/{REPOSITORY}/{REF}?urlpath=lab/tree/{path}"
    assert colab == f"https://colab.research.google.com/github/{REPOSITORY}/blob/{REF}/{path}"
    for url in (binder, colab):
        assert links.parse(url) == {"repository": REPOSITORY, "ref": REF, "path": path}


def test_rewrite_changes_only_the_addresses(tmp_path):
    path = "notebooks/00_index.ipynb"
    old_binder = f"https://mybinder.org/v2/gh/someone/fork/HEAD?urlpath=lab/tree/{path}"
    old_colab = f"https://colab.research.google.com/github/someone/fork/blob/main/{path}"
    badge = f"[![Binder]({links.BINDER_BADGE})]"
    page = tmp_path / "page.md"
    page.write_text(f"{badge}({old_binder}) · [Colab]({old_colab})\n")
    assert links.rewrite(page)
    assert page.read_text() == (
        f"{badge}({links.binder_url(path)}) · [Colab]({links.colab_url(path)})\n"
    )
    assert not links.problems(page)
    assert not links.rewrite(page), "a second rewrite changed the file again"
