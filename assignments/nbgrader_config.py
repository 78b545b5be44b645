"""nbgrader configuration of the course: run nbgrader from this folder (the Makefile does).

source/<assignment>/  the notebooks with solutions and hidden tests (the teacher's copy)
release/<assignment>/ the student versions, made by `make assignments` (committed)
grading/              what the hidden tests import while grading (never handed out)

Grading works in a scratch copy of this folder (`make grade`), so the gradebook and the
students' files never land in the repository.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.root = str(HERE)
c.CourseDirectory.course_id = "vae-tutorial"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"

# Student versions: each solution region becomes this stub; hidden tests are removed.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Released notebooks carry no outputs and no execution counts.
c.ClearOutput.enabled = True

# Grading. Each test cell grades one part; a cell that runs longer than `timeout` seconds is
# interrupted and scored zero, and the rest of the notebook runs on (nbgrader's default is
# interrupt_on_timeout=True with allow_errors=True). Every cell of a correct answer takes
# well under a second; the first (importing TensorFlow) takes about 5.
c.Execute.timeout = 30
# A graded notebook's kernel is stopped at once: TensorFlow's own shutdown would add a second
# or two to every submission.
c.Execute.shutdown_kernel = "immediate"
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    # the hidden tests' references (vae_grading.py), importable in the grading kernel only
    f"--IPKernelApp.exec_lines=import sys; sys.path.insert(0, {str(HERE / 'grading')!r})",
]
