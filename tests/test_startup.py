"""vae_tutorial.startup: TensorFlow imported without its start-up notices, other lines kept;
Keras 2 refused and an untested TensorFlow named, each with the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from vae_tutorial.startup import check_versions

STARTUP = Path(__file__).resolve().parents[1] / "vae_tutorial" / "startup.py"


@pytest.mark.slow
def test_importing_the_package_prints_no_tensorflow_start_up_notices():
    result = subprocess.run(
        [sys.executable, "-c", "import vae_tutorial"], capture_output=True, text=True, check=True
    )
    assert "oneDNN" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
    assert "cpu_feature_guard" not in result.stderr


@pytest.mark.slow
def test_lines_other_than_the_known_notices_reach_stderr(tmp_path):
    # A stand-in `tensorflow` that writes two known notices and one real error to descriptor 2.
    (tmp_path / "tensorflow.py").write_text(
        textwrap.dedent(
            """
            import os
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called "
                        b"are written to STDERR\\n")
            os.write(2, b"I0000 00:00:1.5   123 port.cc:153] oneDNN custom operations are on.\\n")
            os.write(2, b"E0000 00:00:1.5   123 cuda.cc:1] a real problem\\n")
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.path.insert(0, {str(tmp_path)!r})
        spec = importlib.util.spec_from_file_location("startup", {str(STARTUP)!r})
        startup = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(startup)
        print(startup.import_tensorflow_quietly().__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "tensorflow"
    assert result.stderr.splitlines() == ["E0000 00:00:1.5   123 cuda.cc:1] a real problem"]


def test_keras_2_is_refused_with_the_fix():
    with pytest.raises(ImportError, match=r"needs Keras 3.*Keras 2\.15\.0.*pip install"):
        check_versions("2.15.1", "2.15.0")


def test_an_untested_tensorflow_is_named_in_a_warning():
    with pytest.warns(UserWarning, match=r"tested with TensorFlow 2\.21, this is 2\.19\.0"):
        check_versions("2.19.0", "3.10.0")


def test_the_tested_tensorflow_passes_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_versions("2.21.3", "3.15.1")
