"""The site of `mvc ui build` in a real browser: Debian's chromium, headless, driven by Playwright, the pages
opened from disk (file://). No console or page error, no dialog (none of the hostile strings ran), no request
leaving the site, links followed, the diff's selects redrawing the comparison, the index loaded within 1 s.

Skipped, with the reason, only when chromium or Playwright is not installed (.ci/run installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ui_repo import AUTHOR, HOSTILE, build_site
from ui_repo import build as build_repo

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
LOAD_MAX_MS = 1000


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH or at /usr/bin/chromium: apt-get install -y chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        # as root chromium refuses to start with its sandbox; the pages are our own, opened from disk
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ui-browser")
    return build_site(build_repo(base / "repo"), base / "site")


def test_site_in_chromium(browser, site_dir, tmp_path, record_property, capsys):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    dialogs: list[str] = []
    outside: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def dialog(d):
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))

    page.goto((site_dir / "index.html").as_uri())
    load_ms = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; }"
    )
    record_property("index_load_ms", load_ms)
    assert 0 < load_ms <= LOAD_MAX_MS, f"index.html took {load_ms:.0f} ms to load"
    models = page.locator("table.models tbody tr td:first-child a").all_inner_texts()
    assert models == ["churn", "cv/resnet-50", "odd"]
    assert page.locator("link[rel=stylesheet]").count() == 1
    assert page.evaluate("() => getComputedStyle(document.querySelector('header.top')).backgroundColor") != (
        "rgba(0, 0, 0, 0)"
    ), "style.css did not load"

    # a model page: stages, history, lineage, one chart per metric, hostile strings as text
    page.click("text=churn")
    assert page.locator("h1").inner_text() == "churn"
    assert page.locator("figure.chart svg").count() == 3
    body = page.locator("main").inner_text()
    for s in (HOSTILE["commit"], HOSTILE["metric"], HOSTILE["tag"], AUTHOR):
        assert s in body, s
    page.screenshot(path=str(tmp_path / "ui-model.png"), full_page=True)

    # a version page: the whole record
    page.click("table >> text=v0.0.2 >> nth=0")
    assert page.locator("h1").inner_text() == "churn v0.0.2"
    body = page.locator("main").inner_text()
    for s in (HOSTILE["meta"], HOSTILE["attr"], HOSTILE["param"], HOSTILE["auto"], HOSTILE["tensor"]):
        assert s in body, s
    assert page.locator("main img, main iframe, main script, main svg[onload]").count() == 0

    # its "compare" link opens the diff of it and the version before, picked from the URL's fragment
    page.click("text=compare with v0.0.1")
    assert page.locator("#a").input_value() == "v0.0.1" and page.locator("#b").input_value() == "v0.0.2"
    assert "between v0.0.1 and v0.0.2" in page.locator("#summary").inner_text()

    # the selects redraw the comparison
    page.select_option("#b", "v0.0.3")
    summary = page.locator("#summary").inner_text()
    assert "between v0.0.1 and v0.0.3" in summary and not summary.startswith("0 of")
    changed = page.locator("tr.changed").all_inner_texts()
    assert any("accuracy" in row and "0.91" in row for row in changed), changed
    assert any(HOSTILE["param"] in row for row in changed)
    page.select_option("#a", "v0.0.3")
    assert page.locator("#summary").inner_text().startswith("0 of")
    assert page.locator("tr.changed").count() == 0
    page.screenshot(path=str(tmp_path / "ui-diff.png"), full_page=True)

    assert not dialogs, f"a script ran: {dialogs}"
    assert not problems, problems
    assert not outside, f"requests outside the site: {outside}"
    record_property("screenshots", str(tmp_path))
    with capsys.disabled():
        print(f"\n  index.html loaded in {load_ms:.0f} ms; screenshots: {tmp_path}/ui-model.png, ui-diff.png")
    page.close()
