"""The recorded run costs (notebooks/run_costs.json) cover every notebook and are current.

Every notebook is measured by tools/measure_notebooks.py on each data set it must run on (the
rule is the tool's ``required_notebooks``): no failing cell, under 5 minutes and 1.5 GB, and
recorded for the notebook's present code (a notebook whose code changed must be measured
again). Reads the record only: no notebook is executed here.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "measure_notebooks", ROOT / "tools" / "measure_notebooks.py"
)
measure = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = measure  # before running it: its dataclass looks itself up there
_spec.loader.exec_module(measure)

REQUIRED = [
    pytest.param(data_set, notebook, id=f"{data_set}:{notebook}")
    for data_set in measure.DATA_SETS
    for notebook in measure.required_notebooks(data_set)
]


@pytest.fixture(scope="module")
def costs() -> dict:
    assert measure.OUT.is_file(), f"{measure.OUT} is missing: run tools/measure_notebooks.py"
    return json.loads(measure.OUT.read_text())


def test_every_data_set_is_described(costs):
    for name in measure.DATA_SETS:
        entry = costs["data_sets"].get(name)
        assert entry and entry.get("description") and entry.get("measured"), (
            f"data set {name} is not recorded: run `{measure.rerun_command(name)}`"
        )


@pytest.mark.parametrize(("data_set", "notebook"), REQUIRED)
def test_notebook_measured_clean_and_current(costs, data_set, notebook):
    command = measure.rerun_command(data_set, notebook)
    record = costs["notebooks"].get(notebook, {}).get(data_set)
    assert record is not None, f"{notebook} was never measured on {data_set}: run `{command}`"
    assert record["source_sha256"] == measure.source_sha256(measure.NOTEBOOK_DIR / notebook), (
        f"{notebook} changed since it was measured on {data_set}: re-run `{command}`"
    )
    assert record["failing_cells"] == 0, (
        f"{notebook} had {record['failing_cells']} failing cells on {data_set}"
    )
    assert record["wall_seconds"] < measure.MAX_WALL_SECONDS, (
        f"{notebook} took {record['wall_seconds']} s on {data_set}: 5 minutes or more"
    )
    assert record["peak_mb"] < measure.MAX_PEAK_MB, (
        f"{notebook} peaked at {record['peak_mb']} MB on {data_set}: 1.5 GB or more"
    )


def test_source_hash_follows_the_code_alone(tmp_path):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Title\n", "text"]},
            {
                "cell_type": "code",
                "id": "b",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": "print(1)",
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook))
    before = measure.source_sha256(path)
    code = notebook["cells"][1]
    code.update(execution_count=3, outputs=[{"output_type": "stream", "text": "1\n"}])
    code["metadata"]["tags"] = ["x"]
    code["source"] = ["print(1)"]  # the same source split into a list
    notebook["metadata"]["kernelspec"] = {"name": "python3"}
    notebook["cells"][0]["source"] = "# Another title"  # text does not change what runs
    path.write_text(json.dumps(notebook, indent=1))
    assert measure.source_sha256(path) == before
    code["source"] = "print(2)"
    path.write_text(json.dumps(notebook))
    assert measure.source_sha256(path) != before
    code["source"], code["cell_type"] = "print(1)", "raw"
    path.write_text(json.dumps(notebook))
    assert measure.source_sha256(path) != before
