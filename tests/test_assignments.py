"""The course assignments (assignments/): released versions, hidden tests and the grading path.

One grading run (``tools/grade_assignments.py``, what ``make grade`` runs) autogrades a
folder of made-up students in a scratch course: ``solution`` hands in the source's answers
to the two assignments with written answers, ``blank`` the first released notebook untouched,
and ``endless_loop`` one part that never ends, which the course's cell timeout (30 s) must stop
(tests/assignment_submissions.py). Each notebook runs once, in its own kernel, one after
another: most of a submission's 6-10 s here is TensorFlow's import in its kernel (timings.csv
has each one). Every assignment's solution, its released blank and every other planted mistake
are checked against the hidden tests in tests/test_assignment_mistakes.py, an assignment's
submissions in one kernel.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from assignment_submissions import (
    ASSIGNMENTS,
    COURSE,
    MISTAKES,
    TIMEOUT_MISTAKE,
    notebook_path,
    write_submissions,
)
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def has_written_answers(assignment: str) -> bool:
    notebook = nbformat.read(notebook_path("source", assignment), as_version=4)
    return any(
        c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")
        for c in notebook.cells
    )


WRITTEN_ANSWERS = [a for a in ASSIGNMENTS if has_written_answers(a)]  # a teacher reads these
STUDENTS = {
    "solution": WRITTEN_ANSWERS,
    "blank": ASSIGNMENTS[:1],
    TIMEOUT_MISTAKE: sorted(MISTAKES[TIMEOUT_MISTAKE].edits),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every made-up student's submissions once; return the output folder and scores."""
    work = tmp_path_factory.mktemp("grading")
    write_submissions(work / "submissions", STUDENTS)
    env = dict(os.environ, VAE_TUTORIAL_OFFLINE="1")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, ROOT / "tools" / "grade_assignments.py", "submissions", "out"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    count = sum(map(len, STUDENTS.values()))
    print(f"graded {count} submissions in {time.perf_counter() - start:.0f} s")
    with open(work / "out" / "scores.csv", newline="") as f:
        scores = {(r["student"], r["assignment"], r["part"]): r for r in csv.DictReader(f)}
    return work / "out", scores


def autograded_cells(assignment: str) -> list[str]:
    notebook = nbformat.read(notebook_path("source", assignment), as_version=4)
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in notebook.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]


@pytest.mark.parametrize("listing", ["README.md", "notebooks/00_index.ipynb"])
def test_the_teachers_sections_list_every_assignment(listing):
    text = (ROOT / listing).read_text()
    missing = [a for a in ASSIGNMENTS if f"assignments/release/{a}/{a}.ipynb" not in text]
    assert not missing, f"{listing}'s teachers' section does not list {missing}"


def test_every_assignment_has_parts_with_points():
    for assignment in ASSIGNMENTS:
        assert len(autograded_cells(assignment)) >= 2, assignment


@pytest.mark.slow
def test_solutions_score_full_marks(graded):
    _, scores = graded
    for assignment in STUDENTS["solution"]:
        for part in autograded_cells(assignment):
            row = scores["solution", assignment, part]
            assert row["status"] == "autograded", row
            assert float(row["points"]) == float(row["max_points"]) > 0, row


@pytest.mark.slow
def test_written_answers_wait_for_a_teacher(graded):
    _, scores = graded
    written = [r for (s, _, _), r in scores.items() if s == "solution"]
    written = [r for r in written if r["status"] == "needs manual grade"]
    assert {r["part"] for r in written} == {"why-pathwise-loses", "beta-784"}


@pytest.mark.slow
def test_a_released_blank_is_autograded_to_zero(graded):
    _, scores = graded
    for assignment in STUDENTS["blank"]:
        for part in autograded_cells(assignment):
            row = scores["blank", assignment, part]
            assert row["status"] == "autograded" and float(row["points"]) == 0, row


@pytest.mark.slow
def test_an_endless_loop_is_stopped_and_loses_exactly_its_parts_points(graded):
    _, scores = graded
    for assignment, lost in MISTAKES[TIMEOUT_MISTAKE].lost.items():
        for part in autograded_cells(assignment):
            row = scores[TIMEOUT_MISTAKE, assignment, part]
            expected = 0.0 if part in lost else float(row["max_points"])
            assert float(row["points"]) == expected, row


@pytest.mark.slow
def test_timings_csv_has_a_row_per_submission(graded):
    # The grading time itself is a measurement (make grade prints it), not a test.
    out, _ = graded
    with open(out / "timings.csv", newline="") as f:
        timings = list(csv.DictReader(f))
    graded_pairs = {(t["student"], t["assignment"]) for t in timings}
    assert graded_pairs == {(s, a) for s, assignments in STUDENTS.items() for a in assignments}
    assert all(float(t["seconds"]) > 0 for t in timings)


@pytest.mark.slow
def test_feedback_html_for_every_submission(graded):
    out, _ = graded
    for student, assignments in STUDENTS.items():
        for assignment in assignments:
            html = out / "feedback" / student / assignment / f"{assignment}.html"
            assert html.is_file(), html
    text = (out / "feedback" / "solution" / ASSIGNMENTS[0] / f"{ASSIGNMENTS[0]}.html").read_text()
    assert "Score:" in text or "score" in text.lower()


@pytest.mark.slow
def test_scores_csv_lists_every_part_of_every_assignment_for_every_student(graded):
    _, scores = graded
    for student in STUDENTS:
        for assignment in ASSIGNMENTS:
            for part in autograded_cells(assignment):
                assert (student, assignment, part) in scores
    missing = scores[TIMEOUT_MISTAKE, "02_elbo", "test-kl-divergence"]
    assert missing["status"] == "missing" and float(missing["points"]) == 0


def _normalized(path: Path) -> dict:
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        cell.pop("id", None)  # nbformat may add or renumber cell ids
    return notebook


@pytest.mark.slow
def test_committed_release_is_what_nbgrader_generates(graded):
    """The grading run regenerated the student versions from source/ in its scratch course."""
    out, _ = graded
    for assignment in ASSIGNMENTS:
        fresh = out / "course" / "release" / assignment / f"{assignment}.ipynb"
        committed = notebook_path("release", assignment)
        assert _normalized(committed) == _normalized(fresh), (
            f"{committed} is not what `nbgrader generate_assignment` makes: run `make assignments`"
        )
    released = {p.relative_to(COURSE / "release") for p in (COURSE / "release").rglob("*.ipynb")}
    assert released == {Path(a) / f"{a}.ipynb" for a in ASSIGNMENTS}


HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_code(assignment):
    source = nbformat.read(notebook_path("source", assignment), as_version=4)
    release_text = notebook_path("release", assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in release_text
    assert "vae_grading" not in release_text
    secret, public = [], []
    for cell in source.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            secret += cell.source.splitlines()  # a written answer
            continue
        for pattern in (SOLUTION, HIDDEN):
            for block in pattern.findall(cell.source):
                secret += block.splitlines()
        public += SOLUTION.sub("", HIDDEN.sub("", cell.source)).splitlines()
    released = nbformat.read(notebook_path("release", assignment), as_version=4)
    released = {line.strip() for cell in released.cells for line in cell.source.splitlines()}
    public = {line.strip() for line in public}
    for line in {line.strip() for line in secret} - public:
        if len(line) > 25:  # long enough to give an answer away, not `return loss`
            assert line not in released, (assignment, line)


def test_nbgrader_pins_agree_with_jupyterlab():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    teach = {Requirement(r).name: Requirement(r) for r in extras["teach"]}
    test = {Requirement(r).name: Requirement(r) for r in extras["test"]}
    assert str(teach["nbgrader"].specifier) == str(test["nbgrader"].specifier) == "==0.9.6"
    needs = [Requirement(r) for r in metadata.requires("nbgrader") or []]
    wanted = next(r for r in needs if r.name == "jupyterlab" and not r.marker)
    assert teach["jupyterlab"].specifier == wanted.specifier, (teach["jupyterlab"], wanted)
    lab = {Requirement(r).name: Requirement(r) for r in extras["lab"]}
    for version in (metadata.version("jupyterlab"), "4.2.0"):
        assert version in lab["jupyterlab"].specifier and version in wanted.specifier


# Assignment 11's part B grades the split of a global batch against vae_grading.replica_shares.
# That reference must be the split tf.distribute makes: checked on logical CPU devices, in a
# fresh process, since they must be set up before TensorFlow runs its first operation.
_REPLICA_SHARES_CHECK = """
import sys

import tensorflow as tf

sys.path.insert(0, sys.argv[1])
import vae_grading

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
devices = [device.name for device in tf.config.list_logical_devices("CPU")]
for replicas in (2, 3, 4):
    strategy = tf.distribute.MirroredStrategy(devices[:replicas])
    for batch in (1, 2, 3, 5, 7, 10, 11, 65):
        dataset = tf.data.Dataset.range(batch).batch(batch)
        shares = next(iter(strategy.experimental_distribute_dataset(dataset)))
        sizes = [int(t.shape[0]) for t in strategy.experimental_local_results(shares)]
        assert sizes == vae_grading.replica_shares(batch, replicas), (batch, replicas, sizes)
print("tf.distribute splits as vae_grading.replica_shares does")
"""


@pytest.mark.slow
def test_replica_shares_reference_is_how_tf_distribute_splits_a_batch():
    result = subprocess.run(
        [sys.executable, "-c", _REPLICA_SHARES_CHECK, str(COURSE / "grading")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "splits as" in result.stdout, result.stderr[-3000:]
