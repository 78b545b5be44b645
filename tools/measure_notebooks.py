"""Run time, peak memory and failing cells of each notebook on each data set: 00_index's table.

Every lesson and solutions notebook must run top to bottom with no failing cell, in full mode
(no quick mode), in under 5 minutes and 1.5 GB, on each of these data sets:

- ``bundled``: the samples bundled with the package (``VAE_TUTORIAL_OFFLINE=1``, no data
  folder), as the committed notebooks are executed;
- ``digits60k``: a folder holding 60,000 + 10,000 handwritten digits built by
  ``../shared/data/make_digits60k.py FOLDER --seed 0`` as ``mnist/``, beside the full
  Fashion-MNIST as ``fashion-mnist/``: the size a learner online downloads;
- ``digits60k-seed1``: the same built with ``--seed 1``, for the lessons that train
  (05-10, 12-15 and their solutions): another draw of the digits.

Each notebook runs in a fresh kernel with ``--allow-errors``, so every cell runs and the
failing ones are counted. Its last cell prints ``vt.run_summary()``: the seconds since
``vae_tutorial`` was imported and the kernel's peak resident memory; the wall time of the
whole run (kernel start included) is measured here. Each (notebook, data set) record also
keeps the hash of the notebook's cell sources (:func:`source_sha256`), so a record of a
notebook that changed since is known to be stale (``tests/test_run_costs.py``). The records
go to notebooks/run_costs.json, written after each notebook. 00_index, which checks the others'
records, runs after them on every data set named::

    python tools/measure_notebooks.py --data bundled --write-back \\
        --data digits60k=/tmp/digits60k --data digits60k-seed1=/tmp/digits60k_seed1   # all
    python tools/measure_notebooks.py --data digits60k=/tmp/digits60k 05_training_on_mnist.ipynb

``--write-back`` copies each notebook executed on ``bundled`` with no failing cell over the
committed one: the same file as
``VAE_TUTORIAL_OFFLINE=1 jupyter nbconvert --to notebook --execute --inplace NOTEBOOK``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
OUT = NOTEBOOK_DIR / "run_costs.json"
SUMMARY = re.compile(r"Run time: (\d+) s since import; peak memory: (\d+) MB")
MAX_WALL_SECONDS = 300
MAX_PEAK_MB = 1500
INDEX = "00_index.ipynb"  # shows and checks the record of the others
TRAINING_LESSONS = (*range(5, 11), *range(12, 16))  # the lessons that train, and their solutions


@dataclass(frozen=True)
class DataSet:
    """A named data set the notebooks are measured on."""

    description: str
    needs_folder: bool
    training_only: bool  # measured only on the lessons that train (05-10, 12-15 and solutions)


DIGITS = (
    "60,000 + 10,000 jittered real MNIST test digits built by "
    "`python ../shared/data/make_digits60k.py FOLDER --seed {seed}` as mnist/, beside the full "
    "Fashion-MNIST (60,000 + 10,000) as fashion-mnist/, through VAE_TUTORIAL_DATA_DIR"
)
DATA_SETS = {
    "bundled": DataSet(
        "the samples bundled with the package (the official MNIST and Fashion-MNIST test "
        "splits, 8,000 train / 2,000 held out each): VAE_TUTORIAL_OFFLINE=1, no "
        "VAE_TUTORIAL_DATA_DIR",
        needs_folder=False,
        training_only=False,
    ),
    "digits60k": DataSet(DIGITS.format(seed=0), needs_folder=True, training_only=False),
    "digits60k-seed1": DataSet(DIGITS.format(seed=1), needs_folder=True, training_only=True),
}


def all_notebooks() -> list[str]:
    """Every notebook, relative to notebooks/, in teaching order (solutions after)."""
    paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    paths += sorted((NOTEBOOK_DIR / "solutions").glob("[0-9][0-9]_*.ipynb"))
    return [str(p.relative_to(NOTEBOOK_DIR)) for p in paths]


def required_notebooks(data_set: str) -> list[str]:
    """The notebooks that must be measured on ``data_set``: all of them, or the training ones."""
    names = all_notebooks()
    if DATA_SETS[data_set].training_only:
        names = [n for n in names if int(Path(n).name[:2]) in TRAINING_LESSONS]
    return names


def source_sha256(notebook: Path) -> str:
    """Hash of the notebook's code, cell by cell: what its run time, memory and failing cells
    depend on. Executing the notebook or editing its text (markdown) does not change it."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    canonical = [
        c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code"
    ]
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digits_fingerprint(folder: Path) -> str:
    """Short hash of the decompressed MNIST training images in ``folder/mnist``."""
    with gzip.open(folder / "mnist" / "train-images-idx3-ubyte.gz", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def check_folder(folder: Path) -> None:
    """Refuse a data folder without 60,000-image mnist/ and fashion-mnist/ files."""
    for sub in ("mnist", "fashion-mnist"):
        for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            if not (folder / sub / f"{stem}.gz").is_file():
                raise SystemExit(f"error: {folder / sub / stem}.gz is missing")


def last_summary(executed: Path) -> tuple[int, int] | None:
    """(seconds, peak MB) printed by the executed notebook's last code cell, if it did."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    last = [c for c in cells if c["cell_type"] == "code"][-1]
    text = "".join("".join(o.get("text", "")) for o in last.get("outputs", []))
    match = SUMMARY.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def error_cells(executed: Path) -> int:
    """How many cells of the executed notebook raised an error."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return sum(any(o["output_type"] == "error" for o in c.get("outputs", [])) for c in cells)


def environment(folder: Path | None) -> dict[str, str]:
    """Full mode, never a download; the data folder if any, else the bundled samples."""
    env = {**os.environ, "VAE_TUTORIAL_OFFLINE": "1"}
    env.pop("VAE_TUTORIAL_QUICK", None)
    env.pop("VAE_TUTORIAL_DATA_DIR", None)
    if folder is not None:
        env["VAE_TUTORIAL_DATA_DIR"] = str(folder)
    return env


def measure(
    name: str, folder: Path | None, write_back: bool, keep: Path | None = None
) -> tuple[dict | None, str]:
    """Execute one notebook in a fresh kernel: its record (None if it did not finish), a note.

    ``keep``: a copy of the executed notebook is left there too (its results, to read)."""
    source = NOTEBOOK_DIR / name
    record: dict = {"source_sha256": source_sha256(source)}
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / source.name
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
             "--allow-errors", "--ExecutePreprocessor.timeout=1800",
             "--output", str(executed), str(source)],
            env=environment(folder), capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if run.returncode != 0:
            return None, "did not finish: " + (run.stderr.strip().splitlines() or ["?"])[-1]
        summary = last_summary(executed)
        if summary is None:
            return None, "printed no run summary in its last code cell"
        record["wall_seconds"] = round(wall)
        record["kernel_seconds"], record["peak_mb"] = summary
        record["failing_cells"] = error_cells(executed)
        record["date"] = datetime.date.today().isoformat()
        if keep is not None:
            shutil.copyfile(executed, keep)
        note = ""
        if write_back:
            if record["failing_cells"] == 0:
                shutil.copyfile(executed, source)
                note = "written back"
            else:
                note = "not written back: failing cells"
    return record, note


def parse_data(value: str) -> tuple[str, Path | None]:
    """``NAME`` or ``NAME=FOLDER`` -> (name, folder)."""
    name, _, folder = value.partition("=")
    if name not in DATA_SETS:
        raise argparse.ArgumentTypeError(
            f"unknown data set {name!r}: one of {', '.join(DATA_SETS)}"
        )
    if DATA_SETS[name].needs_folder and not folder:
        raise argparse.ArgumentTypeError(f"{name} needs its folder: --data {name}=FOLDER")
    if not DATA_SETS[name].needs_folder and folder:
        raise argparse.ArgumentTypeError(f"{name} takes no folder: --data {name}")
    return name, Path(folder).expanduser().resolve() if folder else None


def notebook_name(value: str) -> str:
    """A notebook named relative to notebooks/ or as a path -> its name relative to notebooks/."""
    for candidate in (Path(value), NOTEBOOK_DIR / value):
        if candidate.is_file() and candidate.suffix == ".ipynb":
            return str(candidate.resolve().relative_to(NOTEBOOK_DIR))
    raise argparse.ArgumentTypeError(f"no notebook {value!r} under {NOTEBOOK_DIR}")


def rerun_command(data_set: str, notebook: str = "") -> str:
    """The command that (re-)measures ``notebook`` (default: all required) on ``data_set``."""
    data = data_set if not DATA_SETS[data_set].needs_folder else f"{data_set}=FOLDER"
    tail = " --write-back" if data_set == "bundled" else ""
    return f"python tools/measure_notebooks.py --data {data}{tail} {notebook}".rstrip()


def machine() -> str:
    """The measuring machine, as recorded."""
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=notebook_name,
        help="names under notebooks/ (default: those each data set must be measured on)",
    )
    parser.add_argument(
        "--data",
        type=parse_data,
        action="append",
        required=True,
        metavar="NAME[=FOLDER]",
        help=f"a data set ({', '.join(DATA_SETS)}); repeat for several",
    )
    parser.add_argument(
        "--write-back",
        action="store_true",
        help="copy each notebook executed on bundled with no failing cell over the committed one",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="FOLDER",
        help="also keep every executed notebook there, as NAME.DATASET.ipynb, to read its results",
    )
    args = parser.parse_args(argv)
    if args.write_back and all(name != "bundled" for name, _ in args.data):
        parser.error("--write-back needs --data bundled (the notebooks are committed so)")

    fingerprints = {}
    for name, folder in args.data:
        if folder is not None:
            check_folder(folder)
            fingerprints[name] = digits_fingerprint(folder)

    costs = json.loads(OUT.read_text()) if OUT.exists() else {}
    if "data_sets" not in costs:  # the earlier layout (one data folder, no hashes): obsolete
        costs = {}
    data_sets = costs.setdefault("data_sets", {})
    figures = costs.setdefault("notebooks", {})
    known = {n: e["digits_fingerprint"] for n, e in data_sets.items() if "digits_fingerprint" in e}
    for name, fingerprint in fingerprints.items():
        twins = [o for o, f in {**known, **fingerprints}.items() if o != name and f == fingerprint]
        if twins:
            raise SystemExit(
                f"error: the folder given for {name} holds the same digits as {twins[0]}'s: "
                f"{name} is {DATA_SETS[name].description}"
            )

    def save() -> None:  # after each notebook: what is done is kept
        OUT.write_text(json.dumps(costs, indent=1, sort_keys=True) + "\n")

    for name, _ in args.data:
        entry = data_sets.setdefault(name, {})
        entry.update(
            description=DATA_SETS[name].description,
            command=rerun_command(name),
            machine=machine(),
            required=required_notebooks(name),
        )
        if name in fingerprints:
            entry["digits_fingerprint"] = fingerprints[name]
    jobs = [
        (name, folder, notebook)
        for name, folder in args.data
        for notebook in args.notebooks or required_notebooks(name)
    ]
    # INDEX checks the record of every other notebook: it runs after them, on every data set.
    jobs.sort(key=lambda job: job[2] == INDEX)
    problems = []
    for name, folder, notebook in jobs:
        keep = None
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            keep = args.keep / f"{Path(notebook).stem}.{name}.ipynb"
        record, note = measure(notebook, folder, args.write_back and name == "bundled", keep)
        if record is None:
            problems.append(f"{notebook} on {name} {note}")
            print(f"{name} {notebook}: {note}", flush=True)
            continue
        figures.setdefault(notebook, {})[name] = record
        data_sets[name]["measured"] = record["date"]
        print(
            f"{name} {notebook}: {record['wall_seconds']} s, {record['peak_mb']} MB, "
            f"{record['failing_cells']} failing cells" + (f"; {note}" if note else ""),
            flush=True,
        )
        if (
            record["failing_cells"]
            or record["wall_seconds"] >= MAX_WALL_SECONDS
            or record["peak_mb"] >= MAX_PEAK_MB
        ):
            problems.append(f"{notebook} on {name} fails a cell or a limit")
        save()
    save()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
