"""Binder and Colab launch links, every one built from binder/launch.json.

binder/launch.json names the GitHub repository and the git ref (the `release` branch) that
every launch link opens; a link to the file at <path> (relative to the repository's root) is

    Binder  https://mybinder.org/v2/gh/<repository>/<ref>?urlpath=lab/tree/<path>
    Colab   https://colab.research.google.com/github/<repository>/blob/<ref>/<path>

The links live in the README, the notebooks' markdown cells, the assignments and binder/.

    python tools/links.py           # rewrite every launch link from binder/launch.json
    python tools/links.py --check   # change nothing, list the links that differ from it
                                    # (both exit 1 if a link is wrong after all)
    python tools/links.py --badges notebooks/01_reparameterization_trick.ipynb
                                    # the badge line for a notebook's first markdown cell

tests/test_launch_links.py checks every link with `problems`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_JSON = ROOT / "binder" / "launch.json"
# Where launch links are looked for: these files, and the text files in these folders.
FILES = ("README.md", "CONTRIBUTING.md")
FOLDERS = ("notebooks", "assignments", "binder", "docs")
SUFFIXES = {".md", ".ipynb", ".txt", ".json", ".html", ".yml", ".yaml", ""}  # "": postBuild
# What `make site` builds into docs/ (git-ignored): copies, not sources.
BUILT = ("docs/_build", "docs/notebooks", "docs/jupyter_execute")

BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

# Any address on either site, up to a space, a quote or markdown's closing parenthesis.
ANY_LINK = re.compile(r"https://(?:mybinder\.org|colab\.research\.google\.com)/[^\s\"'()<>\[\]]*")
BINDER = re.compile(
    r"https://mybinder\.org/v2/gh/(?P<repository>[^/]+/[^/]+)/(?P<ref>[^?]+)"
    r"\?urlpath=lab/tree/(?P<path>.+)"
)
COLAB = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repository>[^/]+/[^/]+)"
    r"/blob/(?P<ref>[^/]+)/(?P<path>.+)"
)


def launch_config(path: Path = LAUNCH_JSON) -> tuple[str, str]:
    """The (repository, ref) that launch links open."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["repository"], data["ref"]


def binder_url(path: str) -> str:
    """Binder link that opens <path> (relative to the repository's root) in JupyterLab."""
    repository, ref = launch_config()
    return f"https://mybinder.org/v2/gh/{repository}/{ref}?urlpath=lab/tree/{path}"


def colab_url(path: str) -> str:
    """Colab link that opens the notebook at <path> (relative to the repository's root)."""
    repository, ref = launch_config()
    return f"https://colab.research.google.com/github/{repository}/blob/{ref}/{path}"


def badges_markdown(path: str) -> str:
    """The two badges, as one markdown line, for a notebook's first markdown cell."""
    return (
        f"[![Open in Colab]({COLAB_BADGE})]({colab_url(path)}) "
        f"[![Launch Binder]({BINDER_BADGE})]({binder_url(path)})"
    )


def parse(url: str) -> dict[str, str] | None:
    """A launch link's repository, ref and path; None for anything else."""
    match = BINDER.fullmatch(url) or COLAB.fullmatch(url)
    return match.groupdict() if match else None


def rebuilt(url: str) -> str | None:
    """The link launch.json makes of a launch link (the same path); None if it is none."""
    if url in (BINDER_BADGE, COLAB_BADGE):
        return url
    parts = parse(url)
    if parts is None:
        return None
    return (binder_url if url.startswith("https://mybinder.org/") else colab_url)(parts["path"])


def files(root: Path = ROOT) -> list[Path]:
    """The files that hold at least one Binder or Colab address."""
    found = [root / name for name in FILES]
    for folder in FOLDERS:
        found += sorted(
            p
            for p in (root / folder).rglob("*")
            if p.is_file()
            and p.suffix in SUFFIXES
            and ".ipynb_checkpoints" not in p.parts
            and not any(p.relative_to(root).as_posix().startswith(f"{b}/") for b in BUILT)
        )
    return [p for p in found if p.exists() and links(p)]


def links(path: Path) -> list[str]:
    """Every Binder and Colab address in a file (in a notebook: in its markdown cells)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return ANY_LINK.findall(text)


def problems(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with a file's launch links, one line each; empty if nothing."""
    found = []
    for url in links(path):
        wanted = rebuilt(url)
        if wanted is None:
            found.append(f"not a launch link built from binder/launch.json: {url}")
        elif wanted != url:
            found.append(f"{url}\n    should be {wanted}")
        parts = parse(url)
        if parts and not (root / parts["path"]).exists():
            found.append(f"{url}\n    opens {parts['path']}, which is not in the repository")
    return found


def rewrite(path: Path) -> bool:
    """Rebuild a file's launch links from launch.json in place; True if the file changed.

    Only the addresses change, byte for byte: a notebook is not re-serialized.
    """
    wanted = {url: rebuilt(url) for url in links(path)}
    fixes = {url: new for url, new in wanted.items() if new is not None and new != url}
    if not fixes:
        return False
    # Whole addresses only; in a notebook's JSON the backslash of an escape (\n) may follow one.
    either = "|".join(re.escape(url) for url in sorted(fixes, key=len, reverse=True))
    text = path.read_text(encoding="utf-8")
    new = re.sub(rf"(?:{either})(?![^\s\"'()<>\[\]\\])", lambda m: fixes[m[0]], text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on problems")
    parser.add_argument("--badges", nargs="+", metavar="PATH", help="print badge lines")
    args = parser.parse_args(argv)
    if args.badges:
        for path in args.badges:
            print(f"{path}:\n{badges_markdown(path)}\n")
        return 0
    bad = 0
    for path in files():
        name = path.relative_to(ROOT).as_posix()
        if not args.check and rewrite(path):
            print(f"rewrote {name}")
        for problem in problems(path):  # after a rewrite: those it cannot mend
            print(f"{name}: {problem}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
