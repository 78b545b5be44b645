"""A learner's path, in a real browser: open a notebook in JupyterLab and run every cell.

First, JupyterLab opens 00_index with the classroom settings of `make lab` and Binder: no
question about Jupyter news, no other notification, no build notice.

Then, in each of NOTEBOOKS: clears the stored outputs, runs "Run > Restart Kernel and Run All
Cells…" from the menu bar, waits for the kernel to go idle with every code cell numbered 1..n
in order, and checks that no cell printed a traceback and that figures were drawn. A
screenshot of the executed notebook is kept in the test's tmp dir.

Last, in 06_latent_space: moves a slider of the latent explorer with the arrow keys and checks
that the decoded image changed. Run with `make browser-test`
(pytest -m browser tests/browser).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["00_index.ipynb", "01_reparameterization_trick.ipynb"]
EXPLORER_NOTEBOOK = "06_latent_space.ipynb"  # the first LatentExplorer (vae_tutorial/explorer.py)
RUN_TIMEOUT_S = float(os.environ.get("VAE_TUTORIAL_BROWSER_TIMEOUT", "600"))

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^Cell In\[\d+\], line \d+", re.MULTILINE
)

# The notebook's state as a learner sees it: kernel status, each code cell's prompt ("[ ]:"
# before, "[*]:" while running, "[7]:" after) and the text of every stderr output.
STATE_JS = f"""() => ({{
  status: document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator')?.dataset.status,
  prompts: [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')]
           .map(e => e.textContent.trim()),
  stderr: [...document.querySelectorAll(
             '{PANEL} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
          .map(e => e.innerText),
}})"""


READY_JS = f"""(n) => {{
  const kernel = document.querySelector('{PANEL} .jp-Toolbar-kernelName');
  const ind = document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator');
  return document.querySelectorAll('{PANEL} .jp-CodeCell').length === n
         && kernel !== null && !/No Kernel/.test(kernel.innerText)
         && ind !== null && ind.dataset.status === 'idle';
}}"""
CLEARED_JS = f"""(n) => {{
  const prompts = [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')];
  return prompts.length === n && prompts.every(e => !/\\d/.test(e.textContent))
         && document.querySelectorAll('{PANEL} .jp-OutputArea-output').length === 0;
}}"""


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _has_figure(nb: dict) -> bool:
    return any(
        "image/png" in o.get("data", {}) for c in _code_cells(nb) for o in c.get("outputs", [])
    )


def _menu(page, menubar: str, command: str) -> None:
    """Click a menu bar item, then the entry bound to a JupyterLab command."""
    page.locator(".lm-MenuBar-item", has_text=menubar).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def _counts(prompts: list[str], runnable: list[int]) -> list:
    """Execution counts of the non-empty code cells (JupyterLab never sends empty ones)."""
    out = []
    for i in runnable:
        p = prompts[i] if i < len(prompts) else "missing"
        out.append(int(p[1:-2]) if re.fullmatch(r"\[\d+\]:", p) else p)
    return out


def _wait_until_finished(page, runnable: list[int]) -> dict:
    """Poll until the kernel is idle, no cell is queued and every cell ran or one raised."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    settled = 0
    while True:
        state = page.evaluate(STATE_JS)
        prompts = state["prompts"]
        finished = state["status"] == "idle" and "[*]:" not in prompts
        numbered = all(isinstance(c, int) for c in _counts(prompts, runnable))
        raised = any(TRACEBACK.search(t) for t in state["stderr"])
        settled = settled + 1 if finished and (numbered or raised) else 0
        if settled >= 2:  # the same answer twice, one second apart
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"notebook still running after {RUN_TIMEOUT_S:.0f}s: {state}")
        page.wait_for_timeout(1000)


@pytest.mark.browser
def test_lab_opens_without_news_question_or_build_notice(lab, page, tmp_path):
    """make lab's settings (binder/jupyter/lab/settings): 00_index opens and nothing pops up."""
    page.goto(lab.page_url("lab/tree/notebooks/00_index.ipynb"))
    page.wait_for_selector(f"{PANEL} .jp-MarkdownCell", timeout=180_000)
    page.wait_for_timeout(5000)  # JupyterLab asks about the news a moment after it loads
    page.screenshot(path=tmp_path / "lab-opened.png")

    config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert (config.get("buildCheck"), config.get("buildAvailable")) == (False, False), (
        "page_config.json's buildCheck/buildAvailable are not in effect"
    )
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not toasts, f"JupyterLab showed notifications: {toasts}"
    dialogs = page.locator(".jp-Dialog").all_inner_texts()
    assert not dialogs, f"JupyterLab showed a dialog (a build notice?): {dialogs}"


def _run_all(page, lab, name: str, tmp_path: Path) -> dict:
    """Open notebooks/``name`` in JupyterLab, clear its outputs, Restart Kernel and Run All
    Cells from the menu, and check that every cell ran in order without a traceback."""
    path = ROOT / "notebooks" / name
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = _code_cells(nb)
    n_code = len(code)
    runnable = [i for i, c in enumerate(code) if "".join(c["source"]).strip()]

    page.goto(lab.page_url(f"lab/tree/notebooks/{name}"))
    # Wait for the whole notebook and its kernel: the first cells render, with "No Kernel" and
    # an idle indicator, before the rest of the file has loaded.
    page.wait_for_function(READY_JS, arg=n_code, timeout=180_000, polling=500)

    # Wipe the committed outputs first, so everything checked below was made in this run.
    _menu(page, "Edit", "editmenu:clear-all")
    page.wait_for_function(CLEARED_JS, arg=n_code, timeout=30_000)
    page.wait_for_timeout(1000)
    assert page.evaluate(CLEARED_JS, n_code), f"{name}: outputs came back after Clear All Outputs"
    _menu(page, "Run", "runmenu:restart-and-run-all")
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart" in the confirmation dialog

    try:
        state = _wait_until_finished(page, runnable)
    finally:
        page.screenshot(path=tmp_path / f"{path.stem}-end.png")
        print(f"screenshots in {tmp_path}")

    tracebacks = [t for t in state["stderr"] if TRACEBACK.search(t)]
    assert not tracebacks, f"{name} raised in the browser:\n" + "\n\n".join(tracebacks)
    counts = _counts(state["prompts"], runnable)
    assert counts == list(range(1, len(runnable) + 1)), (
        f"{name}: execution counts {counts} after Restart and Run All; a cell failed or was skipped"
    )
    return nb


@pytest.mark.browser
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(name, lab, page, tmp_path):
    path = ROOT / "notebooks" / name
    if not path.exists():
        if name == NOTEBOOKS[0] and os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"notebooks/{name}, the series' entry point, is missing")
        pytest.skip(f"notebooks/{name} does not exist yet")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    nb = _run_all(page, lab, name, tmp_path)

    outputs = page.locator(f"{PANEL} .jp-OutputArea-output")
    images = page.locator(f"{PANEL} .jp-OutputArea-output img")
    if _has_figure(nb):
        assert images.count() > 0, f"{name}: the committed notebook has figures, none rendered"
        images.last.scroll_into_view_if_needed()
        page.screenshot(path=tmp_path / f"{path.stem}-figure.png")
    assert outputs.count() > 0, f"{name}: no output at all after running every cell"

    after = hashlib.sha256(path.read_bytes()).hexdigest()
    assert after == before, f"{name} was modified on disk by the browser session (autosave?)"


@pytest.mark.browser
def test_latent_explorer_redraws_when_a_slider_moves(lab, page, tmp_path):
    """06's LatentExplorer, as a learner uses it: arrow keys on a slider, a new image."""
    _run_all(page, lab, EXPLORER_NOTEBOOK, tmp_path)
    image = page.locator(f"{PANEL} img.widget-image").first
    image.scroll_into_view_if_needed()
    handle = page.locator(f"{PANEL} .widget-slider .noUi-handle").first
    before = (image.get_attribute("src"), handle.get_attribute("aria-valuenow"))
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([img, src]) => document.querySelector(img)?.getAttribute('src') !== src",
        arg=[f"{PANEL} img.widget-image", before[0]],
        timeout=30_000,
    )
    page.screenshot(path=tmp_path / "latent-explorer.png")
    after = (image.get_attribute("src"), handle.get_attribute("aria-valuenow"))
    assert after[1] != before[1], f"the slider did not move: {before[1]} -> {after[1]}"
    assert after[0] != before[0], "the image did not change when the slider moved"
