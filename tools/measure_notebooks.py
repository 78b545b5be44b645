"""Run time and peak memory of every notebook with full-size data: the figures in 00_index.

A learner online downloads all 60,000 MNIST training images, so the notebooks are measured
with a data folder of that size (through VAE_TUTORIAL_DATA_DIR), in full mode (no quick mode),
each in a fresh kernel. Each notebook's last cell prints ``vt.run_summary()``: the seconds since
``vae_tutorial`` was imported and the kernel's peak resident memory; the wall time of the whole
run (kernel start included) is measured here. The results go to notebooks/run_costs.json,
which notebook 00 reads. Where the data folder holds a stand-in of the same size (e.g.
Fashion-MNIST in place of MNIST), asserts about digits may fail: every cell still runs, and the
failing cells are counted in ``stand_in_errors``::

    python tools/measure_notebooks.py --data-dir /path/to/folder-with-mnist   # all notebooks
    python tools/measure_notebooks.py --data-dir ... 05_training_on_mnist.ipynb
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
OUT = NOTEBOOK_DIR / "run_costs.json"
SUMMARY = re.compile(r"Run time: (\d+) s since import; peak memory: (\d+) MB")


def all_notebooks() -> list[str]:
    """Every notebook, relative to notebooks/, in teaching order (solutions after)."""
    paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    paths += sorted((NOTEBOOK_DIR / "solutions").glob("[0-9][0-9]_*.ipynb"))
    return [str(p.relative_to(NOTEBOOK_DIR)) for p in paths]


def last_summary(executed: Path) -> tuple[int, int]:
    """(seconds, peak MB) printed by the executed notebook's last code cell."""
    cells = json.loads(executed.read_text())["cells"]
    last = [c for c in cells if c["cell_type"] == "code"][-1]
    text = "".join("".join(o.get("text", "")) for o in last.get("outputs", []))
    match = SUMMARY.search(text)
    if not match:
        raise SystemExit(f"error: {executed.name} printed no run summary in its last cell")
    return int(match.group(1)), int(match.group(2))


def error_cells(executed: Path) -> int:
    """How many cells of the executed notebook raised an error."""
    cells = json.loads(executed.read_text())["cells"]
    return sum(any(o["output_type"] == "error" for o in c.get("outputs", [])) for c in cells)


def measure(name: str, data_dir: Path) -> dict:
    """Execute one notebook in a fresh kernel; return its wall time, kernel time and peak."""
    env = {**os.environ, "VAE_TUTORIAL_DATA_DIR": str(data_dir)}
    env.pop("VAE_TUTORIAL_QUICK", None)
    source = NOTEBOOK_DIR / name
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / source.name
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
             "--allow-errors", "--ExecutePreprocessor.timeout=1800",
             "--output", str(executed), str(source)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        kernel_seconds, peak_mb = last_summary(executed)
        errors = error_cells(executed)
    return {
        "wall_seconds": round(wall),
        "kernel_seconds": kernel_seconds,
        "peak_mb": peak_mb,
        "stand_in_errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names under notebooks/ (default: all)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="a folder with mnist/ (or the MNIST files) holding all 60,000 training images",
    )
    args = parser.parse_args(argv)
    costs = json.loads(OUT.read_text()) if OUT.exists() else {}
    figures = costs.setdefault("notebooks", {})
    for name in args.notebooks or all_notebooks():
        figures[name] = measure(name, args.data_dir)
        print(f"{name}: {figures[name]}", flush=True)
        OUT.write_text(json.dumps(costs, indent=1, sort_keys=True) + "\n")  # keep what is done
    costs["measured"] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
        "data": "60,000 training and 10,000 test images through VAE_TUTORIAL_DATA_DIR",
        "command": "python tools/measure_notebooks.py --data-dir <folder>",
    }
    OUT.write_text(json.dumps(costs, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
