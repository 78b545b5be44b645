"""The course website (`make site`), read in headless Chromium with the internet blocked.

The built site (docs/_build/html; built here if missing) is served from a loopback port and
every request to anywhere else is refused. Each page must load without a console error or a
failed request, show every equation rendered by the bundled MathJax, load every image; the
lessons' previous/next links follow the course order; every launch link opens binder/launch.json's
repository and ref; search finds "reparameterization". Screenshots of the landing page and one
lesson, at desktop and phone widths, are written to docs/_build/screenshots/.
Run with `make browser-test` (pytest -m browser tests/browser).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "docs" / "_build" / "html"
SHOTS = ROOT / "docs" / "_build" / "screenshots"
BUILD = [
    sys.executable,
    "-m",
    "sphinx",
    "-W",
    "--keep-going",
    "-n",
    "-b",
    "html",
    "docs",
    str(SITE),
]
LAUNCH = json.loads((ROOT / "binder" / "launch.json").read_text())
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# TeX left as text: a delimiter or a command that MathJax would have turned into an equation.
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\[|\\(frac|mathcal|sum|mathbb|log|sigma|mu)\b")

# The page's prose with code, code outputs and rendered equations left out; equations that
# MathJax did not render; images that did not load; the launch, previous and next links.
PAGE_JS = """async () => {
  if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  const article = document.querySelector("article") || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll("pre, code, .highlight, .output, mjx-container, script, style")
       .forEach(e => e.remove());
  const href = sel => document.querySelector(sel)?.href ?? null;
  return {
    text: prose.textContent,
    unrendered: [...article.querySelectorAll(".math")]
      .filter(e => !e.querySelector("mjx-container")).map(e => e.textContent.slice(0, 80)),
    broken: imgs.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
    launch: [...document.querySelectorAll("a[href]")].map(a => a.href)
      .filter(h => /mybinder\\.org|colab\\.research\\.google\\.com/.test(h)),
    prev: href("a.left-prev"),
    next: href("a.right-next"),
  };
}"""

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site_url():
    """The built site on a free loopback port (built first if it is not there)."""
    if not (SITE / "index.html").exists():
        try:
            subprocess.run(BUILD, cwd=ROOT, check=True)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            pytest.fail(f"the site is not built and building it failed ({e}): run `make site`")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request in the test output
        pass


@pytest.fixture
def offline_page(browser, site_url):
    """A page that may load only the site: other requests are aborted and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []

    def route(r):
        if r.request.url.startswith(site_url):
            r.continue_()
        else:
            problems.append(f"request outside the site: {r.request.url}")
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    page.problems = problems
    yield page
    context.close()


def launch_urls(path: str) -> set[str]:
    repo, ref = LAUNCH["repository"], LAUNCH["ref"]
    return {
        f"https://mybinder.org/v2/gh/{repo}/{ref}?urlpath=lab/tree/{path}",
        f"https://colab.research.google.com/github/{repo}/blob/{ref}/{path}",
    }


def test_every_page(offline_page, site_url):
    pages = sorted(
        p.relative_to(SITE).as_posix()
        for p in SITE.rglob("*.html")
        if not p.relative_to(SITE).parts[0].startswith("_")
    )
    assert "index.html" in pages and len(pages) > 2 * len(LESSONS), pages
    lesson_pages = [f"notebooks/{stem}.html" for stem in LESSONS]
    notebooks = [Path(p).with_suffix(".ipynb").as_posix() for p in pages]
    notebooks += [
        p.relative_to(ROOT).as_posix() for p in ROOT.glob("assignments/release/*/*.ipynb")
    ]
    allowed_launch = set().union(*(launch_urls(n) for n in notebooks))
    failures = []
    for name in pages:
        offline_page.problems.clear()
        offline_page.goto(site_url + name, wait_until="load")
        state = offline_page.evaluate(PAGE_JS)
        offline_page.wait_for_load_state("networkidle")  # fonts too, before the next page
        found = list(offline_page.problems)
        found += [f"equation not rendered: {t!r}" for t in state["unrendered"]]
        found += [f"TeX left as text: {m.group(0)!r}" for m in RAW_TEX.finditer(state["text"])]
        found += [f"image not loaded: {src}" for src in state["broken"]]
        stray = set(state["launch"]) - allowed_launch
        found += [f"launch link not from launch.json: {h}" for h in sorted(stray)]
        if name.startswith("notebooks/"):
            expected = launch_urls(name.removesuffix(".html") + ".ipynb")
            missing = expected - set(state["launch"])
            found += [f"no launch link {u}" for u in sorted(missing)]
        if name in lesson_pages:
            i = lesson_pages.index(name)
            prev = "index.html" if i == 0 else lesson_pages[i - 1]
            if state["prev"] != site_url + prev:
                found.append(f"previous is {state['prev']}, not {prev}")
            if i + 1 < len(lesson_pages) and state["next"] != site_url + lesson_pages[i + 1]:
                found.append(f"next is {state['next']}, not {lesson_pages[i + 1]}")
        failures += [f"{name}: {f}" for f in found]
    assert not failures, "\n".join(failures)


def test_search_finds_reparameterization(offline_page, site_url):
    offline_page.goto(site_url + "search.html?q=reparameterization", wait_until="load")
    results = offline_page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("01_reparameterization_trick" in h for h in hrefs), hrefs
    assert not offline_page.problems, offline_page.problems


@pytest.mark.parametrize("width,height", [(1280, 900), (390, 844)])
def test_one_search_box_per_page(offline_page, site_url, width, height):
    offline_page.set_viewport_size({"width": width, "height": height})
    for page in ("index.html", "notebooks/02_the_elbo_loss.html"):
        offline_page.goto(site_url + page, wait_until="load")
        boxes = offline_page.locator(".search-button-field:visible, .search-button:visible")
        assert boxes.count() == 1, f"{page} at {width}px shows {boxes.count()} search boxes"


@pytest.mark.parametrize("width,height,label", [(1280, 900, "desktop"), (390, 844, "phone")])
def test_screenshots(offline_page, site_url, width, height, label, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    offline_page.set_viewport_size({"width": width, "height": height})
    for name, page in [("landing", "index.html"), ("lesson-02", "notebooks/02_the_elbo_loss.html")]:
        offline_page.goto(site_url + page, wait_until="load")
        offline_page.evaluate(PAGE_JS)
        path = SHOTS / f"{name}-{label}.png"
        offline_page.screenshot(path=str(path))
        with capsys.disabled():
            print(f"\nscreenshot: {path}")
    assert not offline_page.problems, offline_page.problems
