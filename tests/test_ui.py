"""mvc ui build / serve: the static site of the registry, its structure, its escaping, its errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import git
from ui_repo import AUTHOR, HOSTILE, STRINGS, build_site
from ui_repo import build as build_repo

from mvc.api import site, site_render

# every element the pages may hold: anything else in a page was injected
ELEMENTS = {
    "html",
    "head",
    "meta",
    "title",
    "link",
    "body",
    "header",
    "nav",
    "a",
    "main",
    "footer",
    "h1",
    "h2",
    "h3",
    "p",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "pre",
    "code",
    "time",
    "div",
    "figure",
    "figcaption",
    "svg",
    "line",
    "text",
    "polyline",
    "circle",
    "form",
    "label",
    "select",
    "option",
    "noscript",
    "script",
}


class Page(HTMLParser):
    """A page parsed: its elements, attributes, text (entities decoded) and script contents."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)

    def all_text(self) -> str:
        return "".join(self.text)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(repository, site) of tests/ui_repo.py, built once for the module."""
    base = tmp_path_factory.mktemp("ui")
    root = build_repo(base / "repo")
    return root, build_site(root, base / "site")


def pages(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.html")}


def test_structure(built):
    _, out = built
    found = pages(out)
    assert (out / "style.css").is_file() and (out / site.MARKER).is_file()
    churn, cv, odd = "m/churn/", f"m/{site_render.slug('cv/resnet-50')}/", "m/odd/"
    assert cv == "m/cv_2fresnet-50/"
    expected = {"index.html"}
    for base, versions in (
        (churn, ("v0.0.1", "v0.0.2", "v0.0.3")),
        (cv, ("v0.0.1", "v0.0.2", "v0.0.3")),
        (odd, ("v0.0.1",)),
    ):
        expected |= {base + "index.html", base + "diff.html"} | {f"{base}v/{v}.html" for v in versions}
    assert set(found) == expected
    # every link of every page leads to a file of the site; nothing is loaded from elsewhere
    for rel, text in found.items():
        page = Page(text)
        for tag, attrs in page.tags:
            for key in ("href", "src", "action", "srcset", "data"):
                target = attrs.get(key)
                if target is None:
                    continue
                assert key == "href", f"{rel}: <{tag} {key}=…>"
                assert "://" not in target and not target.startswith("//"), f"{rel}: external link {target}"
                path = target.split("#")[0]
                if path:
                    assert (out / rel).parent.joinpath(path).resolve().is_file(), f"{rel}: broken link {target}"
    index = Page(found["index.html"]).all_text()
    for name in ("churn", "cv/resnet-50", "odd"):
        assert name in index
    assert "prod" not in index.split("churn")[1].split("cv/resnet-50")[0]  # cancelled: churn has no prod now


def test_model_page_shows_history_lineage_and_charts(built):
    _, out = built
    text = (out / "m/churn/index.html").read_text()
    page = Page(text)
    words = page.all_text()
    for what in ("assign", "unassign", "register", AUTHOR, HOSTILE["commit"] + " #2", "first churn", "v0.0.3"):
        assert what in words, what
    captions = [t for t, _ in page.tags if t == "figcaption"]
    assert len(captions) == 3  # accuracy, f1 and the hostile metric: one chart each
    assert text.count("<polyline") == 3
    assert HOSTILE["metric"] in words
    # the old pointer without [meta.metrics] is left out of the charts of a model that has the table
    assert "<title>v0.0.1:" not in text
    odd = Page((out / "m/odd/index.html").read_text()).all_text()
    assert "odd model" in odd and HOSTILE["path"] in odd  # lineage of a path with HTML in it
    cv = (out / "m/cv_2fresnet-50/index.html").read_text()
    assert cv.count("<polyline") == 2 and "deregistered" in cv


def test_version_page_shows_the_whole_record(built):
    _, out = built
    words = Page((out / "m/churn/v/v0.0.2.html").read_text()).all_text()
    for what in ("0.85", "optimizer", HOSTILE["param"], "data/train.csv", "2024-05-01T10:00:00+00:00", "tok.json"):
        assert what in words, what
    for what in (HOSTILE["auto"], HOSTILE["tensor"], "mvc_version", "prod", "xxh128:"):
        assert what in words, what
    old = Page((out / "m/churn/v/v0.0.1.html").read_text()).all_text()
    assert "accuracy" in old and HOSTILE["tag"] in old
    assert "diff.html#v0.0.2..v0.0.1" in (out / "m/churn/v/v0.0.1.html").read_text()  # the oldest: with the next


def test_every_hostile_string_is_text_never_markup(built):
    _, out = built
    seen = ""
    for rel, text in pages(out).items():
        page = Page(text)
        names = {t for t, _ in page.tags}
        assert names <= ELEMENTS, f"{rel}: injected elements {names - ELEMENTS}"
        for tag, attrs in page.tags:
            bad = [k for k in attrs if k.startswith("on") or k in ("src", "srcset", "style")]
            assert not bad, f"{rel}: <{tag}> has {bad}"
            assert not any(v and "javascript:" in v for v in attrs.values()), f"{rel}: <{tag} {attrs}>"
        for attrs, body in page.scripts:
            if attrs.get("type") == "application/json":
                assert "<" not in body, f"{rel}: '<' in the JSON blob"
                json.loads(body)
            else:
                assert attrs == {} and body == site_render.SCRIPT, f"{rel}: a script that is not the diff script"
        seen += page.all_text()
    for s in [*STRINGS, AUTHOR]:
        assert s in seen, f"{s!r} is shown nowhere"


def test_diff_page_defaults_to_the_two_latest_and_embeds_every_record(built):
    _, out = built
    text = (out / "m/churn/diff.html").read_text()
    page = Page(text)
    selected = [a.get("value") for t, a in page.tags if t == "option" and "selected" in a]
    assert selected == ["v0.0.2", "v0.0.3"]
    words = page.all_text()
    assert "values differ between v0.0.2 and v0.0.3" in words
    [(_, body)] = [s for s in page.scripts if s[0].get("type") == "application/json"]
    blob = json.loads(body)
    assert set(blob["records"]) == {"v0.0.1", "v0.0.2", "v0.0.3"}
    rows = {(r[0], r[1]): r[2] for r in blob["records"]["v0.0.3"]}
    assert rows[("metrics", "accuracy")] == "0.91"
    assert rows[("params", "optimizer")] == HOSTILE["param"]
    assert rows[("auto", "host")] == HOSTILE["auto"]
    assert rows[("meta", "note")] == HOSTILE["meta"]
    changed = re.findall(r'<tr class="changed"><td>([a-z]+)</td><td class="mono">([^<]*)</td>', text)
    assert ("metrics", "accuracy") in changed and ("auto", "dirty") in changed


def test_csp_allows_only_the_diff_script(built):
    _, out = built
    text = (out / "index.html").read_text()
    [csp] = [
        a["content"] for t, a in Page(text).tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp is not None and "default-src 'none'" in csp and f"script-src 'sha256-{site_render.SCRIPT_HASH}';" in csp
    assert "<script" not in text


def test_rebuild_replaces_the_site_and_refuses_other_directories(built, tmp_path, mvc_cli, mvc_error, monkeypatch):
    root, _ = built
    monkeypatch.chdir(root)
    target = tmp_path / "site"
    mvc_cli("ui", "build", "-o", str(target))
    (target / "m" / "stale.html").write_text("old")
    result = mvc_cli("ui", "build", "-o", str(target))
    assert "(3 models, 7 versions)" in result.stdout
    assert not (target / "m" / "stale.html").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".mvc-ui-")]  # no temp directory left
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    mvc_error("ui", "build", "-o", str(other), words=("not empty", "-o"))
    assert (other / "notes.txt").read_text() == "keep me"
    mvc_error("ui", "build", "-o", str(other / "notes.txt"), words=("not a directory",))
    mvc_error("ui", "build", "-o", str(other / "notes.txt" / "site"), words=("cannot write", "-o"))


def test_unwritable_output(built, tmp_path, mvc_error, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")  # the not-a-directory case covers the error
    root, _ = built
    monkeypatch.chdir(root)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        mvc_error("ui", "build", "-o", str(ro / "site"), words=("cannot write", "-o"))
    finally:
        ro.chmod(0o700)


def test_outside_git(tmp_path, mvc_error, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mvc_error("ui", "build", "-o", "site", words=("git",))
    assert not (tmp_path / "site").exists()


def test_no_models(gitrepo, mvc_cli):
    result = mvc_cli("ui", "build", "-o", "site")  # no commit at all
    assert "(0 models, 0 versions)" in result.stdout
    assert "No models in the registry yet" in (gitrepo / "site" / "index.html").read_text()
    (gitrepo / "f").write_text("x")
    git(gitrepo, "add", "f")
    git(gitrepo, "commit", "-q", "-m", "one")
    assert "(0 models" in mvc_cli("ui", "build", "-o", "site").stdout


def test_bare_repository(built, tmp_path, mvc_cli, monkeypatch):
    root, _ = built
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(root), str(bare))
    monkeypatch.chdir(bare)
    assert "(3 models, 7 versions)" in mvc_cli("ui", "build", "-o", str(tmp_path / "s")).stdout
    assert "first churn" in (tmp_path / "s" / "m" / "churn" / "index.html").read_text()


def test_slug_is_one_safe_file_name_per_name():
    names = ["churn", "cv/resnet-50", "cv-resnet-50", "Churn", "a_b", "dir:name", "v1.2.0-rc.1", ".", ".."]
    slugs = [site_render.slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9._\-]+", s) and s.strip(".") for s in slugs)


def test_json_blob_cannot_end_its_element():
    text = site_render.json_blob({"x": "</script><!-- \u2028 & >"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"x": "</script><!-- \u2028 & >"}


def test_long_values_that_differ_past_the_cut_are_told_apart():
    """A value longer than VALUE_MAX is cut in tables, with its length and a digest of the whole: two that differ
    only at their end compare as different (the compare page compares these texts); the version page shows it
    whole."""
    a, b = "x" * 2500, "x" * 2499 + "y"
    assert site_render.show(a) != site_render.show(b) and len(site_render.show(a)) < 2100
    _, changed, _ = site_render.diff_rows(
        [["meta", "config", site_render.show(a)]], [["meta", "config", site_render.show(b)]]
    )
    assert changed == 1
    assert site_render.show(a, whole=True) == a
    assert a in site_render.kv([("config", a)])


def test_values_that_show_alike_still_compare_as_different():
    """A bidi override shown as the text \\u202e, and that text typed as it is; the number 1 and the string "1":
    the compare page tells each pair apart by the values' identities, not by what it shows."""
    for a, b in (("lr\u202e", "lr\\u202e"), (1, "1")):
        ra = site_render.record_rows({}, {"commit": "c", "meta": {"x": a}})
        rb = site_render.record_rows({}, {"commit": "c", "meta": {"x": b}})
        assert site_render.diff_rows(ra, rb)[1] == 1, (a, b)


def test_bidi_and_control_characters_are_shown_not_obeyed():
    for text in ("gnp.\u202eexe", "a\u2066b\u2069", "bell\x07", "nul\x00"):
        for shown in (site_render.esc(text), site_render.show(text)):
            assert not any(c in shown for c in "\u202e\u2066\u2069\x07\x00"), shown
            assert "\\u" in shown or "\\x" in shown or "\\u00" in shown
    assert site_render.esc("tab\tand\nline") == "tab\tand\nline"  # (pre blocks keep their layout)


def test_chart_escapes_and_handles_one_point():
    svg = site_render.chart("<x>", [("v0.0.1", 1.0)])
    assert "<x>" not in svg and "&lt;x&gt;" in svg and "<polyline" in svg
    assert 'aria-label="&lt;x&gt;: 1 version, 1.0 (v0.0.1)"' in svg  # not "1 versions"
    two = site_render.chart("x", [("v0.0.1", 1.0), ("v0.0.2", 2.0)])
    assert ": 2 versions, from 1.0 (v0.0.1) to 2.0 (v0.0.2)" in two


def test_serve(built, tmp_path):
    root, _ = built
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvc", "ui", "serve", "--port", "0", "-o", str(tmp_path / "s")],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line + proc.stderr.read()
        with urllib.request.urlopen(url.group() + "m/churn/index.html", timeout=10) as r:
            assert r.status == 200 and b"first churn" in r.read()
        with urllib.request.urlopen(url.group() + "style.css", timeout=10) as r:
            assert b"body" in r.read()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_lineage_names_moves_and_versions_on_commits_that_kept_the_pointer(repo, mvc_cli):
    """mvc mv is one move, not a removal (the model's path at HEAD is followed too); a version registered on a
    commit that did not change the model is shown with the change that wrote its pointer, also when that pointer
    was written twice (a change undone)."""

    def head() -> str:
        return git(repo, "rev-parse", "HEAD").strip()

    (repo / "model.bin").write_bytes(b"first weights " * 100)
    mvc_cli("add", "model.bin", "--name", "churn", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    first = head()
    mvc_cli("register", "churn", "-q")  # v0.0.1 on first
    git(repo, "commit", "-q", "--allow-empty", "-m", "code only")
    mvc_cli("register", "churn", "-q")  # v0.0.2: first's pointer
    code = head()
    (repo / "model.bin").write_bytes(b"second weights " * 100)
    mvc_cli("add", "model.bin", "-q")
    git(repo, "commit", "-q", "-am", "second")
    second = head()
    (repo / "model.bin").write_bytes(b"first weights " * 100)  # undone: first's pointer again
    mvc_cli("add", "model.bin", "-q")
    git(repo, "commit", "-q", "-am", "back")
    back = head()
    git(repo, "commit", "-q", "--allow-empty", "-m", "code again")
    mvc_cli("register", "churn", "-q")  # v0.0.3: written by "back", the same bytes as "first"
    again = head()
    mvc_cli("mv", "model.bin", "models/churn.bin")
    git(repo, "commit", "-q", "-m", "move")
    moved = head()
    [m] = site.collect()["models"]
    rows = {c["commit"]: c for c in m["lineage"]}
    assert list(rows) == [moved, back, second, first]
    assert rows[moved]["changes"] == ["moved model.bin -> models/churn.bin"] and rows[moved]["also"] == []
    assert rows[back]["also"] == [{"version": "v0.0.3", "commit": again}]
    assert rows[first]["also"] == [{"version": "v0.0.2", "commit": code}]
    assert all("_made" not in c for c in m["lineage"])
    mvc_cli("ui", "build", "-o", "site")
    page = (repo / "site" / "m" / "churn" / "index.html").read_text()
    assert f"(at {code[:10]}, the same model)" in page and "moved model.bin -&gt; models/churn.bin" in page
