"""Every lesson (01-15) is course work: a figure, a summary, labelled exercises, and from 06 on
cells where the learner writes the lesson's core. Read from the committed notebooks, no kernel.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = sorted(p.name for p in NOTEBOOKS.glob("[01][0-9]_*.ipynb") if not p.name.startswith("00"))
LEVEL = re.compile(r"^\d+\. \*\*(Check|Practice|Project|Open question) · \d+ (min|h)\b", re.M)
ORDER = ["Check", "Practice", "Project", "Open question"]


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_fifteen_lessons():
    assert len(LESSONS) == 15, LESSONS


@pytest.mark.parametrize("name", LESSONS)
def test_a_lesson_shows_a_figure(name):
    outputs = [o for c in _cells(name) if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} shows no figure"


@pytest.mark.parametrize("name", LESSONS)
def test_a_lesson_ends_with_a_summary_then_exercises_from_check_upward(name):
    cells = _cells(name)
    headings = [_text(c).splitlines()[0] for c in cells if c["cell_type"] == "markdown"]
    assert "## Summary" in headings and "## Exercises" in headings, name
    assert headings.index("## Summary") < headings.index("## Exercises"), name
    summary = next(_text(c) for c in cells if _text(c).startswith("## Summary"))
    assert "$$" in summary, f"{name}: the summary has no formula to remember"
    exercises = next(_text(c) for c in cells if _text(c).startswith("## Exercises"))
    items = re.findall(r"^\d+\. ", exercises, re.M)
    levels = [m.group(1) for m in LEVEL.finditer(exercises)]
    assert items and len(levels) == len(items), f"{name}: every exercise needs a level and time"
    assert levels[0] == "Check", f"{name}: the exercises start with a check of understanding"
    ranks = [ORDER.index(level) for level in levels]
    assert ranks == sorted(ranks), f"{name}: exercises do not rise in difficulty: {levels}"


@pytest.mark.parametrize("name", [n for n in LESSONS if int(n[:2]) >= 6])
def test_from_06_on_the_learner_writes_the_core_and_a_check_follows(name):
    cells = _cells(name)
    turns = [i for i, c in enumerate(cells) if _text(c).startswith("### Your turn")]
    assert turns, f"{name} has no 'Your turn' cell"
    for i in turns:
        following = "\n".join(_text(c) for c in cells[i + 1 : i + 6] if c["cell_type"] == "code")
        assert "NotImplementedError" in following, f"{name}: cell {i} gives no skeleton"
        assert re.search(r"\bcheck_\w+\(", following), f"{name}: cell {i} is not checked"
