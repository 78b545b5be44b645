"""Start TensorFlow for the tutorial: without its start-up notices, at a version that works.

TensorFlow 2.21 writes its C++ start-up lines (absl and oneDNN notices) straight to file
descriptor 2 while it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so they would open every
notebook. Here the descriptor points at a temporary file during the import; afterwards every
line that is not one of those known notices is written back to stderr, so a real warning or
error is never lost.
Taught in notebook 00_index.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import types
import warnings

TESTED_TENSORFLOW = "2.21"  # the minor version CI, Binder and the committed notebooks use
INSTALL_FIX = (
    "install the tested versions with `pip install 'tensorflow==2.21.*' 'keras>=3.10,<4'` "
    "(on Colab: `%pip install ...`, then Runtime > Restart session)"
)

# The notices TensorFlow prints on every start; anything else is passed on.
START_UP_NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^[IW]\d{4} [\d:.]+\s+\d+ (port|cpu_feature_guard)\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)


def import_tensorflow_quietly() -> types.ModuleType:
    """Import and return ``tensorflow``, keeping back only its known start-up notices.

    ``import vae_tutorial`` calls it first. Taught in notebook 00_index.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Python-side INFO and WARNING lines
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines()
                if line.strip() and not START_UP_NOTICE.search(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    return tensorflow


def check_versions(tensorflow_version: str, keras_version: str) -> None:
    """Refuse Keras 2 with the fix; warn once when TensorFlow is not the tested minor version.

    Colab and older environments bring their own TensorFlow. Taught in notebook 00_index.
    """
    if keras_version.split(".")[0] != "3":
        raise ImportError(
            f"vae_tutorial needs Keras 3, but this environment has Keras {keras_version} "
            f"(TensorFlow {tensorflow_version}): {INSTALL_FIX}"
        )
    if not tensorflow_version.startswith(TESTED_TENSORFLOW + "."):
        warnings.warn(
            f"vae_tutorial is tested with TensorFlow {TESTED_TENSORFLOW}, this is "
            f"{tensorflow_version}; if a cell fails, {INSTALL_FIX}",
            stacklevel=2,
        )
