"""The hidden tests catch each classic mistake, and only in its part.

Every planted mistake (tests/assignment_submissions.py) must lose exactly its parts' points
and keep every other part's; every released blank scores zero in every part, and every
solution full marks. What is checked here is the hidden tests, not nbgrader's pipeline:
tests/test_assignments.py grades the solutions, one released blank and the endless loop end
to end with nbgrader, each in a fresh kernel.

An assignment's submissions run here one after another in one kernel started as the course's
nbgrader configuration starts its kernels (the grading code on the path, the same cell
timeout): each from an emptied namespace (``%reset -f``) in a folder of its own, as nbgrader
runs it (the test cells as source/ has them, hidden tests included), and the solution last, so
that a namespace left by an earlier submission would show as a lost point there. Each graded
cell scores by nbgrader's own rule, ``nbgrader.utils.determine_grade`` (an error, or anything
written to stderr, scores zero). TensorFlow then starts once per assignment, not once per
submission: its start-up is most of a submission's grading time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from assignment_submissions import (
    ASSIGNMENTS,
    COURSE,
    MISTAKES,
    TIMEOUT_MISTAKE,
    answered,
    notebook_path,
)
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbgrader.utils import determine_grade, is_grade, is_solution
from traitlets.config.loader import PyFileConfigLoader


def mistakes_in(assignment: str) -> list[str]:
    return sorted(
        name
        for name, mistake in MISTAKES.items()
        if assignment in mistake.edits and name != TIMEOUT_MISTAKE
    )


def graded_test_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    """The autograded test cells of a notebook, by grade id."""
    return {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in notebook.cells
        if c.cell_type == "code" and is_grade(c) and not is_solution(c)
    }


def as_autograded(
    assignment: str, student: str, tests: dict[str, nbformat.NotebookNode], folder: Path
) -> nbformat.NotebookNode:
    """``student``'s submission as nbgrader's autograde runs it: the test cells put back from
    ``tests``, source/'s (hidden tests included), after a first cell that empties the
    namespace and moves to ``folder``."""
    if student == "blank":
        notebook = nbformat.read(notebook_path("release", assignment), as_version=4)
    else:
        notebook = answered(assignment, None if student == "solution" else student)
    for grade_id, cell in graded_test_cells(notebook).items():
        cell.source = tests[grade_id].source
    folder.mkdir(parents=True)
    start = nbformat.v4.new_code_cell(f"%reset -f\nimport os\nos.chdir({str(folder)!r})")
    notebook.cells.insert(0, start)
    return notebook


def points_in_one_kernel(assignment: str, students: list[str], work: Path) -> dict:
    """{student: {test cell: points}} for ``students`` run in order in one kernel."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(
        os.environ, VAE_TUTORIAL_OFFLINE="1", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    )
    kernel = KernelManager(kernel_name="python3")
    kernel.start_kernel(
        extra_arguments=list(config.Execute.extra_arguments), cwd=str(work), env=env
    )
    tests = graded_test_cells(nbformat.read(notebook_path("source", assignment), as_version=4))
    points = {}
    try:
        for student in students:
            notebook = as_autograded(assignment, student, tests, work / student)
            NotebookClient(
                notebook, km=kernel, timeout=config.Execute.timeout, allow_errors=True,
                interrupt_on_timeout=True,
            ).execute()  # fmt: skip
            points[student] = {
                grade_id: determine_grade(cell)
                for grade_id, cell in graded_test_cells(notebook).items()
            }
    finally:
        kernel.shutdown_kernel(now=True)
    return points


@pytest.mark.slow
@pytest.mark.parametrize(
    "assignment",
    [pytest.param(a, marks=pytest.mark.xdist_group(f"mistakes-{a}")) for a in ASSIGNMENTS],
)
def test_blank_mistakes_and_solution_score_exactly_what_they_should(assignment, tmp_path):
    points = points_in_one_kernel(
        assignment, ["blank", *mistakes_in(assignment), "solution"], tmp_path
    )
    wrong = []
    for student, scored in points.items():
        if student in ("blank", "solution"):
            lost = set(scored) if student == "blank" else set()
        else:
            lost = MISTAKES[student].lost[assignment]
        for part, (got, max_points) in scored.items():
            expected = 0.0 if part in lost else max_points
            if got != expected:
                wrong.append(f"{student}: {part} scored {got} of {max_points}, expected {expected}")
    assert not wrong, "\n".join(wrong)
