"""Grade a folder of submissions with nbgrader: a score table per student and part, and feedback.

    python tools/grade_assignments.py SUBMISSIONS OUT        (or: make grade SUBMISSIONS=...)

SUBMISSIONS holds one folder per student, each with one folder per assignment, as nbgrader
collects them: ``SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb``. OUT receives

- ``scores.csv``: one row per student, assignment and part (test cell or written answer):
  ``student, assignment, part, points, max_points, status`` with status ``autograded``,
  ``needs manual grade`` (a written answer) or ``missing`` (the assignment was not handed in);
- ``timings.csv``: seconds taken to autograde each submission;
- ``feedback/<student>/<assignment>/<assignment>.html``: nbgrader's feedback for the student;
- ``course/``: the scratch nbgrader course it graded in (its gradebook.db keeps every grade;
  written answers can be graded there with nbgrader's formgrader).

Grading runs in that scratch copy of assignments/ (the gradebook is rebuilt from
assignments/source/ every time), so the repository is never written to. The students'
notebooks run in a fresh kernel each; each cell is interrupted after the timeout set in
assignments/nbgrader_config.py (``--timeout`` overrides it).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "assignments"


def prepare_course(work: Path, submissions: Path) -> list[tuple[str, str]]:
    """Copy the course's source and grading code into ``work`` and the submissions into
    ``work/submitted``; return the (student, assignment) pairs found."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy2(COURSE / "nbgrader_config.py", work)
    shutil.copytree(COURSE / "source", work / "source")
    shutil.copytree(
        COURSE / "grading", work / "grading", ignore=shutil.ignore_patterns("__pycache__")
    )
    assignments = {p.name for p in (COURSE / "source").iterdir() if p.is_dir()}
    pairs = []
    for student in sorted(p for p in submissions.iterdir() if p.is_dir()):
        for folder in sorted(p for p in student.iterdir() if p.is_dir()):
            if folder.name not in assignments:
                print(f"skipped {folder}: no assignment of that name in {COURSE / 'source'}")
                continue
            shutil.copytree(
                folder,
                work / "submitted" / student.name / folder.name,
                ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
            )
            pairs.append((student.name, folder.name))
    return pairs


def grade(submissions: Path, out: Path, timeout: int | None = None) -> Path:
    # nbgrader runs `alembic` (to create the gradebook) as a program found on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    work = out / "course"
    pairs = prepare_course(work, submissions)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(work)).load_config()
    if timeout is not None:
        config.Execute.timeout = timeout
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    assignments = sorted(p.name for p in (work / "source").iterdir() if p.is_dir())
    for assignment in assignments:  # fills the gradebook with the source's cells and points
        _check(api.generate_assignment(assignment), f"generate_assignment {assignment}")

    timings = []
    for student, assignment in pairs:
        start = time.perf_counter()
        _check(api.autograde(assignment, student), f"autograde {assignment} for {student}")
        seconds = time.perf_counter() - start
        timings.append((student, assignment, round(seconds, 1)))
        print(f"graded {student}/{assignment} in {seconds:.1f} s", flush=True)
    for assignment in sorted({a for _, a in pairs}):
        _check(api.generate_feedback(assignment), f"generate_feedback {assignment}")

    out.mkdir(parents=True, exist_ok=True)
    if (out / "feedback").exists():
        shutil.rmtree(out / "feedback")
    if (work / "feedback").exists():
        shutil.copytree(work / "feedback", out / "feedback")
    _write_csv(out / "timings.csv", ["student", "assignment", "seconds"], timings)
    rows = score_rows(work, [s for s in sorted({s for s, _ in pairs})], assignments, set(pairs))
    _write_csv(
        out / "scores.csv",
        ["student", "assignment", "part", "points", "max_points", "status"],
        rows,
    )
    return out / "scores.csv"


def score_rows(work: Path, students, assignments, submitted) -> list[tuple]:
    """One row per student, assignment and graded cell, read from the gradebook."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        for student in students:
            for assignment in assignments:
                for notebook in gb.find_assignment(assignment).notebooks:
                    for cell in notebook.grade_cells:
                        if (student, assignment) not in submitted:
                            rows.append(
                                (student, assignment, cell.name, 0, cell.max_score, "missing")
                            )
                            continue
                        g = gb.find_grade(cell.name, notebook.name, assignment, student)
                        status = "needs manual grade" if g.needs_manual_grade else "autograded"
                        points = g.score if not g.needs_manual_grade else ""
                        rows.append(
                            (student, assignment, cell.name, points, cell.max_score, status)
                        )
    return rows


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        raise SystemExit(
            f"nbgrader failed: {what}\n{result.get('error', '')}\n{result.get('log', '')}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of <student>/<assignment>/ folders")
    parser.add_argument("out", type=Path, help="where scores.csv, timings.csv and feedback/ go")
    parser.add_argument("--timeout", type=int, help="seconds per cell (default: the course's)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of submissions")
    scores = grade(args.submissions.resolve(), args.out.resolve(), args.timeout)
    print(f"scores: {scores}\nfeedback: {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
