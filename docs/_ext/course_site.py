"""The course website's own Sphinx steps.

- the notebooks (notebooks/ and notebooks/solutions/) are mirrored into docs/notebooks/
  (gitignored) before reading, so the pages and the repository have the same paths;
- `course-map`: the landing page's table of lessons, from the map in notebooks/00_index.ipynb
  (its SERIES dict) and the run times in notebooks/run_costs.json (the digits60k records);
- `assignment-downloads`: the student versions in assignments/release/, to download;
- `package-api`: autodoc of the package's public functions and classes, grouped by module;
  "Taught in notebook NN_name" in a docstring becomes a link to that lesson;
- a lesson page says where its solutions are, a solutions page which lesson it solves;
- remote images (the notebooks' launch badges) are left out: the site fetches nothing from
  outside, and the theme's launch menu replaces the badges;
- MathJax is copied from the django-static-mathjax package into the build's _static/.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.fileutil import copy_asset

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
MIRROR = "notebooks"  # under docs/
LESSON = re.compile(r"^\d\d_[a-z0-9_]+$")
ANCHOR = re.compile(r'<a\s+id="([^"]+)"')


def lessons() -> list[str]:
    """The lessons' file stems in course order: 00_index, 01_..., 11_..."""
    return sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def series_map() -> dict[str, tuple[str, str]]:
    """notebook stem -> (title, what you learn), read from 00_index's SERIES cell."""
    cells = json.loads((NOTEBOOKS / "00_index.ipynb").read_text())["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("SERIES = {"):
            tree = ast.parse(source)
            return ast.literal_eval(tree.body[0].value)
    raise ValueError("notebooks/00_index.ipynb has no `SERIES = {...}` cell")


def run_seconds() -> dict[str, int]:
    """notebook stem -> wall seconds with the 60,000-image data set; missing records left out."""
    path = NOTEBOOKS / "run_costs.json"
    if not path.exists():
        return {}
    records = json.loads(path.read_text()).get("notebooks", {})
    out = {}
    for name, by_data in records.items():
        seconds = (by_data.get("digits60k") or {}).get("wall_seconds")
        if seconds is not None and "/" not in name:
            out[Path(name).stem] = seconds
    return out


def mirror_notebooks(app: Sphinx) -> None:
    """Copy notebooks/**.ipynb into docs/notebooks/ (only what changed; stale copies removed)."""
    target = Path(app.srcdir) / MIRROR
    wanted = {}
    for src in [*NOTEBOOKS.glob("*.ipynb"), *NOTEBOOKS.glob("solutions/*.ipynb")]:
        wanted[target / src.relative_to(NOTEBOOKS)] = src
    for old in target.rglob("*.ipynb") if target.exists() else []:
        if old not in wanted:
            old.unlink()
    for dst, src in wanted.items():
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _launch_urls():
    """tools/links.py: the one place launch links are built (from binder/launch.json)."""
    spec = importlib.util.spec_from_file_location("links", ROOT / "tools" / "links.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    return links.binder_url, links.colab_url


binder_url, colab_url = _launch_urls()


def launch_links(path: str) -> str:
    """'Binder · Colab' for a notebook path in the repository."""
    return f"[Binder]({binder_url(path)}) · [Colab]({colab_url(path)})"


class CourseMap(SphinxDirective):
    """The table of lessons: number, title, what you learn, solutions, run time, launch."""

    def run(self):
        self.env.note_dependency(str(NOTEBOOKS / "00_index.ipynb"))
        self.env.note_dependency(str(NOTEBOOKS / "run_costs.json"))
        series = {
            "00_index": ("Start here", "the map, how to run it, where each function is taught")
        }
        series.update(series_map())
        seconds = run_seconds()
        rows = [
            "| # | Lesson | What you learn | Solutions | Run time | Run it |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for stem in lessons():
            title, learn = series.get(stem, (stem, ""))
            solutions = NOTEBOOKS / "solutions" / f"{stem}_solutions.ipynb"
            sol = (
                f"{{doc}}`solutions </{MIRROR}/solutions/{solutions.stem}>`"
                if solutions.exists()
                else ""
            )
            time = f"{seconds[stem]} s" if stem in seconds else "not measured"
            launch = launch_links(f"notebooks/{stem}.ipynb")
            link = f"[{title}]({MIRROR}/{stem}.ipynb)"
            rows.append(f"| {stem[:2]} | {link} | {learn} | {sol} | {time} | {launch} |")
        return self.parse_markdown(rows)

    def parse_markdown(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="course-map"), 0, container)
        return container.children


class AssignmentDownloads(SphinxDirective):
    """A list of the assignments' student versions, each file a download link."""

    def run(self):
        release = ROOT / "assignments" / "release"
        lines = []
        for folder in sorted(p for p in release.iterdir() if p.is_dir()):
            files = sorted(f for f in folder.iterdir() if f.is_file())
            links = ", ".join(f"{{download}}`{f.name} <../{f.relative_to(ROOT)}>`" for f in files)
            lines.append(f"- **{folder.name}**: {links}")
        return CourseMap.parse_markdown(self, lines)


def public_api() -> dict[str, list[tuple[str, object]]]:
    """module -> [(name, object)]: the package's public functions and classes (as 00_index)."""
    import vae_tutorial as vt

    groups: dict[str, list[tuple[str, object]]] = {}
    for name, obj in vars(vt).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if obj.__module__.startswith("vae_tutorial"):
            groups.setdefault(obj.__module__, []).append((name, obj))
    return dict(sorted(groups.items()))


class PackageApi(SphinxDirective):
    """autofunction / autoclass for every public name of vae_tutorial, grouped by module."""

    def run(self):
        lines = []
        for module, members in public_api().items():
            lines += ["", f".. rubric:: {module}", ""]
            for name, obj in members:
                kind = "autoclass" if inspect.isclass(obj) else "autofunction"
                lines.append(f".. {kind}:: vae_tutorial.{name}")
                if inspect.isclass(obj):
                    lines.append("   :members:")
                lines.append("")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="package-api"), 0, container)
        return container.children


def link_lessons(app, what, name, obj, options, lines: list[str]) -> None:
    """In a docstring, NN_name (a lesson's stem) becomes a link to that lesson's page, and
    |x| (an absolute value in plain text) stays text instead of an undefined substitution."""
    known = set(lessons())

    def link(m: re.Match) -> str:
        stem = m.group(1)
        return f":doc:`{stem} </{MIRROR}/{stem}>`" if stem in known else stem

    for i, line in enumerate(lines):
        line = re.sub(r"\|(\w+)\|", r"\\|\1\\|", line)
        lines[i] = re.sub(r"(?<![`/\w])(\d\d_[a-z][a-z0-9_]*[a-z0-9])(?![`\w])", link, line)


class RemoteImages(SphinxTransform):
    """Leave out remote images (and a link around one): the site loads nothing from outside."""

    default_priority = 500

    def apply(self):
        for image in list(self.document.findall(nodes.image)):
            if not image["uri"].startswith(("http://", "https://")):
                continue
            outer = image.parent if isinstance(image.parent, nodes.reference) else image
            outer.parent.remove(outer)


def html_anchors(app: Sphinx, doctree: nodes.document) -> None:
    """Make a notebook's `<a id="exercise-1"></a>` a target that links like `doc.ipynb#exercise-1`
    resolve (MyST resolves them from the document's heading slugs)."""
    slugs = app.env.metadata[app.env.docname].setdefault("myst_slugs", {})
    for raw in doctree.findall(nodes.raw):
        if raw.get("format") == "html":
            for anchor in ANCHOR.findall(raw.astext()):
                slugs.setdefault(anchor, (None, anchor, ""))


def page_note(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    """A lesson page links its solutions; a solutions page links its lesson."""
    stem = pagename.rsplit("/", 1)[-1]
    note = None
    if pagename == f"{MIRROR}/{stem}" and LESSON.match(stem):
        solutions = f"{MIRROR}/solutions/{stem}_solutions"
        if solutions in app.env.all_docs:
            note = ("The worked solutions to this lesson's exercises", solutions)
    elif pagename.startswith(f"{MIRROR}/solutions/") and stem.endswith("_solutions"):
        note = ("The lesson these exercises belong to", f"{MIRROR}/{stem[: -len('_solutions')]}")
    if note:
        text, target = note
        context["course_note"] = (text, context["pathto"](target), app.env.titles[target].astext())


def copy_mathjax(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        raise RuntimeError("MathJax is missing: pip install -e '.[site]' (django-static-mathjax)")
    es5 = Path(spec.origin).parent / "static" / "mathjax" / "es5"
    copy_asset(str(es5), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", mirror_notebooks)
    app.connect("doctree-read", html_anchors)
    app.connect("autodoc-process-docstring", link_lessons)
    app.connect("html-page-context", page_note)
    app.connect("build-finished", copy_mathjax)
    app.add_directive("course-map", CourseMap)
    app.add_directive("assignment-downloads", AssignmentDownloads)
    app.add_directive("package-api", PackageApi)
    app.add_transform(RemoteImages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
