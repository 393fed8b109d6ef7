"""The quick book: built from a copy of the project, then opened page by page in headless Chromium.

Checks that every page loads, every image decodes and is not blank, no page
shows a Python traceback, and that a second build with nothing changed skips
every run. Screenshots of the
index and one run page go to tests/artifacts/ (not committed).
"""
from __future__ import annotations

import functools
import html
import html.parser
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pytest
from PIL import Image

from crowdkit.book.appendix import SCREENSHOT_DIR
from crowdkit.common import config

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = SCREENSHOT_DIR  # the appendix shows what this check photographs
COPIED = ("_config.yml", "_toc.yml", "book", "notebooks", "data")  # data/: plans and reported tables
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,1600")
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'class="output traceback', "output error")
#: Text a reader must never see on a page: log lines, warnings, progress bars, build machines' paths.
FORBIDDEN_TEXT = {
    "a log line or warning": re.compile(r"\bWARNING\b|\bUserWarning\b|\bFutureWarning\b|^INFO |\bDEBUG\b", re.M),
    "a traceback": re.compile(r"Traceback"),
    "tqdm's IProgress warning": re.compile(r"IProgress"),
    "a path of the build machine": re.compile(r"(?<![\w.])(/tmp/|/root/|/home/\w+/|/var/folders/)"),
    "a progress bar": re.compile(r"\d+%\|[█▏▎▍▌▋▊▉ ]*\||\d+(\.\d+)?(it|nb|s)/s\]"),
}


#: Each part's landing page: it opens with the part's findings, a figure and a table.
LANDING_PAGES = {"crowd": "book/runs/crowd_summary/summary.html", "bias": "book/runs/bias_summary/summary.html"}
#: Landing pages that must already show a figure and a table.
FINDINGS_PAGES = ("crowd", "bias")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed; the browser test needs it: "
                    "`apt-get update && apt-get install -y chromium` (`make test` does this)")
    return path


def crowdkit_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "crowdkit"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The quick book built twice in a copy of the project (the real tree's book/runs stays untouched)."""
    root = tmp_path_factory.mktemp("book")
    for name in COPIED:
        source = config.PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, symlinks=True,  # data/external stays a link, never copied
                            ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    cold = crowdkit_cli("book", "build", "--root", str(root), "--profile", "quick", cwd=root)
    assert cold.returncode == 0, f"quick book build failed:\n{cold.stdout[-4000:]}\n{cold.stderr[-4000:]}"
    sidecars = {p: json.loads(p.read_text()) for p in (root / "book" / "runs").glob("*/*.run.json")}
    warm = crowdkit_cli("book", "build", "--root", str(root), "--profile", "quick", cwd=root)
    assert warm.returncode == 0, f"second quick book build failed:\n{warm.stdout[-4000:]}\n{warm.stderr[-4000:]}"
    return {"root": root, "html": root / "_build" / "html", "cold": cold, "warm": warm, "sidecars": sidecars}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def server(built):
    handler = functools.partial(_QuietHandler, directory=str(built["html"]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _Page(html.parser.HTMLParser):
    """What a reader sees: the text outside code inputs, and whether each setup cell's code is collapsed.

    Code cells' inputs (``cell_input``) are left out of the visible text; an
    input is collapsed when it sits inside a ``<details>`` toggle or a cell
    tagged ``hide-input`` (a ``remove-input`` cell has no input in the page).
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.visible: list[str] = []
        self.open_setup_cells = 0
        self.tables = 0
        self.figures = 0

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if tag == "table":
            self.tables += 1
        if tag == "img" or (tag == "svg" and "figure" in classes):
            self.figures += 1
        if tag not in self.VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        tags = [t for t, _ in self.stack]
        classes = " ".join(c for _, c in self.stack)
        if "script" in tags or "style" in tags:
            return
        if "cell_input" in classes:
            if "setup_notebook(" in data and "details" not in tags and "tag_hide-input" not in classes:
                self.open_setup_cells += 1
            return
        self.visible.append(data)

    @property
    def text(self) -> str:
        return "".join(self.visible)


class _Images(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def pages(html_dir: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "_sphinx_design_static"}
    return sorted(p for p in html_dir.rglob("*.html") if not skip & set(p.relative_to(html_dir).parts))


def dump_dom(browser: str, url: str, profile: Path) -> str:
    result = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                             "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium could not load {url}: {result.stderr[-2000:]}"
    return result.stdout


def screenshot(browser: str, url: str, target: Path, profile: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                    f"--screenshot={target}", url], capture_output=True, text=True, timeout=120)
    assert target.is_file(), f"chromium wrote no screenshot of {url}"
    assert not_blank(target), f"the screenshot of {url} is one flat colour"


def not_blank(path: Path) -> bool:
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("RGB"))
    return pixels.size > 0 and bool(pixels.reshape(-1, 3).std(axis=0).max() > 1.0)


def test_build_prints_timings_and_second_build_skips(built):
    cold, warm = built["cold"].stdout, built["warm"].stdout
    assert "seconds" in cold and "appendix/reproducibility" in cold
    executed = list(built["sidecars"])
    for path in executed:  # nothing changed: every run, summaries included, was skipped, its record untouched
        before, after = built["sidecars"][path], json.loads(path.read_text())
        assert f"{before['plan']}/{before['run']}" in warm
        changed = sorted(k for k in before["hash_inputs"] if before["hash_inputs"][k] != after["hash_inputs"][k])
        if changed:  # only in a tree someone edits during the test (crowdkit_source): a re-run is then right
            print(f"{path.name}: re-ran because {changed} changed between the two builds")
            continue
        assert after["started"] == before["started"], f"{path} re-ran although nothing changed"
    assert "skipped" in warm or not executed
    assert (built["html"] / "index.html").is_file()


def test_every_page_loads_without_traceback_and_every_image_is_real(built, server, tmp_path):
    browser = chromium()
    html_dir = built["html"]
    found = pages(html_dir)
    assert any("runs" in p.parts for p in found), "no executed notebook page was rendered"
    problems = []
    images_checked = 0
    for page in found:
        url = urljoin(server, page.relative_to(html_dir).as_posix())
        dom = dump_dom(browser, url, tmp_path / "chromium-profile")
        if "<main" not in dom and "<article" not in dom:
            problems.append(f"{url}: no main content in the DOM")
        for marker in TRACEBACK_MARKERS:
            if marker in dom:
                problems.append(f"{url}: shows a Python error ({marker!r})")
        page_text = _Page()
        page_text.feed(dom)
        for what, pattern in FORBIDDEN_TEXT.items():
            match = pattern.search(page_text.text)
            if match:
                context = page_text.text[max(0, match.start() - 60): match.end() + 60].replace("\n", " ")
                problems.append(f"{url}: shows {what}: …{context}…")
        if page_text.open_setup_cells:
            problems.append(f"{url}: the setup cell's code is shown (tag it hide-input or remove-input)")
        parser = _Images()
        parser.feed(dom)
        for source in parser.sources:
            if source.startswith("data:"):
                continue
            target = urlparse(urljoin(url, source))
            if target.netloc != urlparse(server).netloc:
                problems.append(f"{url}: image from another host: {source}")
                continue
            file = html_dir / unquote(target.path).lstrip("/")
            if not file.is_file():
                problems.append(f"{url}: image {source} does not exist")
            elif file.suffix.lower() == ".svg":
                images_checked += 1
                if "<svg" not in file.read_text(errors="replace"):
                    problems.append(f"{url}: {source} is not an SVG")
            else:
                images_checked += 1
                try:
                    if not not_blank(file):
                        problems.append(f"{url}: image {source} is blank (one flat colour)")
                except OSError as error:
                    problems.append(f"{url}: image {source} does not decode: {error}")
    assert not problems, "\n".join(problems)
    print(f"{len(found)} pages, {images_checked} images checked")


def test_screenshots_of_index_part_landing_pages_and_a_run_page(built, server, tmp_path):
    browser = chromium()
    screenshot(browser, urljoin(server, "index.html"), ARTIFACTS / "book_index.png", tmp_path / "profile-a")
    for part, page in LANDING_PAGES.items():
        screenshot(browser, urljoin(server, page), ARTIFACTS / f"book_{part}_landing.png", tmp_path / f"profile-{part}")
    run_pages = [p for p in pages(built["html"]) if "runs" in p.parts]
    assert run_pages, "no run page to photograph"
    preferred = [p for p in run_pages if "crowd" in p.parts or "engine" in p.parts] or run_pages
    page = preferred[0].relative_to(built["html"]).as_posix()
    screenshot(browser, urljoin(server, page), ARTIFACTS / "book_run_page.png", tmp_path / "profile-b")


def test_the_page_reader_sees_outputs_but_not_collapsed_code():
    page = _Page()
    page.feed('<main><div class="cell tag_hide-input"><details><div class="cell_input"><pre>session = '
              'setup_notebook()</pre></div></details><div class="cell_output"><pre>WARNING:crowdkit: /tmp/x'
              '</pre></div></div><div class="cell"><div class="cell_input">setup_notebook()</div></div>'
              '<table><tr><td>1</td></tr></table><img src="a.png"></main>')
    assert "setup_notebook" not in page.text and "WARNING:crowdkit: /tmp/x" in page.text
    assert page.open_setup_cells == 1 and page.tables == 1 and page.figures == 1
    assert FORBIDDEN_TEXT["a log line or warning"].search(page.text)
    assert FORBIDDEN_TEXT["a path of the build machine"].search(page.text)


def test_each_part_opens_with_a_figure_and_a_table(built, server, tmp_path):
    browser = chromium()
    for part in FINDINGS_PAGES:
        page = _Page()
        dom = dump_dom(browser, urljoin(server, LANDING_PAGES[part]), tmp_path / f"profile-landing-{part}")
        page.feed(dom)
        assert page.figures >= 1 and page.tables >= 1, f"{LANDING_PAGES[part]}: {page.figures} figures, {page.tables} tables"
        text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
        assert "Findings" in text and "claim" in text  # Sphinx turns ' into a curly quote
        assert "No finished" not in text, f"{LANDING_PAGES[part]} found none of this build's runs"
