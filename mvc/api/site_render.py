"""The pages of ``mvc ui build``: pure functions from the data ``mvc.api.site.collect`` returns to HTML text.

Every string that comes from the repository (model, stage and version names, paths, records, commit and tag
messages, authors, metric names) is escaped where it is written into the page (``esc``); the records the diff
page's script reads are JSON in a ``<script type="application/json">`` element with ``<``, ``>`` and ``&``
written as ``\\u003c``… so no string can end that element. The one script is a constant, allowed by its hash in
each page's Content-Security-Policy, which also forbids any other script and any request outside the site.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any
from urllib.parse import quote

from mvc.api.site_text import esc, flat, human, identity, json_blob, kv, show, slug, table, when, who

SECTIONS = ("registry", "pointer", "metrics", "params", "meta", "auto", "other")
NONE = '<span class="mute">none</span>'


# The style sheet, and the diff page's script: it reads the records from the JSON element and writes only
# through textContent. Files beside this module, so that they read as CSS and JavaScript.
_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site_static")
with open(os.path.join(_STATIC, "style.css"), encoding="utf-8") as _f:
    CSS = _f.read()
with open(os.path.join(_STATIC, "diff.js"), encoding="utf-8") as _f:
    SCRIPT = _f.read()

SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    f"script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)


def page(title: str, crumbs: list[tuple[str, str | None]], body: str, root: str, site: dict[str, Any]) -> str:
    """A whole page: crumbs are (text, href or None); root is the way back to the site's top ('', '../../')."""
    nav = " / ".join(f'<a href="{esc(h)}">{esc(t)}</a>' if h else esc(t) for t, h in crumbs)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{root}style.css"></head><body>'
        f'<header class="top"><a href="{root}index.html">{esc(site["title"])} · model registry</a>'
        f'<nav class="crumbs">{nav}</nav></header>'
        f"<main>{body}</main>"
        f"<footer>Built by mvc ui build at {when(site['generated'])} from the registry tags and pointers of "
        f"this repository. A static snapshot: rebuild to refresh.</footer>"
        "</body></html>\n"
    )


def stage_badges(stages: Any, link: str | None = None) -> str:
    if isinstance(stages, dict):
        return "".join(f'<span class="badge stage">{esc(s)}: {esc(v["version"])}</span>' for s, v in stages.items())
    return "".join(f'<span class="badge stage">{esc(s)}</span>' for s in stages)


def version_link(m: dict[str, Any], version: str | None, root: str) -> str:
    if version is None:
        return '<span class="mute">—</span>'
    if any(v["version"] == version for v in m["versions"]):
        return f'<a href="{root}m/{slug(m["name"])}/v/{slug(version)}.html">{esc(version)}</a>'
    return f'<span class="mono">{esc(version[:12])}</span>'


# -- charts -----------------------------------------------------------------------------------
def chart(metric: str, points: list[tuple[str, float]], width: int = 320, height: int = 150) -> str:
    """One metric over versions (oldest first) as an inline SVG line chart."""
    left, right, top, bottom = 46, 10, 10, 24
    lo, hi = min(y for _, y in points), max(y for _, y in points)
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    w, h = width - left - right, height - top - bottom
    step = w / (len(points) - 1) if len(points) > 1 else 0.0

    def xy(i: int, y: float) -> tuple[float, float]:
        return left + (i * step if len(points) > 1 else w / 2), top + h - (y - lo) / (hi - lo) * h

    coords = [xy(i, y) for i, (_, y) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{esc(v)}: {esc(show(val))}</title></circle>'
        for (x, y), (v, val) in zip(coords, points, strict=True)
    )
    first, last = points[0][0], points[-1][0]
    if len(points) == 1:
        label = f"{metric}: 1 version, {show(points[0][1])} ({first})"
    else:
        label = (
            f"{metric}: {len(points)} versions, from {show(points[0][1])} ({first}) to {show(points[-1][1])} ({last})"
        )
    return (
        f'<figure class="chart"><figcaption>{esc(metric)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{esc(label)}">'
        f'<line class="axis" x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + h}"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{esc(f"{hi:.4g}")}</text>'
        f'<text x="{left - 4}" y="{top + h}" text-anchor="end">{esc(f"{lo:.4g}")}</text>'
        f'<text x="{left}" y="{height - 6}">{esc(first[:16])}</text>'
        f'<text x="{left + w}" y="{height - 6}" text-anchor="end">{esc(last[:16]) if len(points) > 1 else ""}</text>'
        f'<polyline class="line" points="{line}"/>{dots}</svg></figure>'
    )


# -- records ----------------------------------------------------------------------------------
def record_rows(m: dict[str, Any], v: dict[str, Any]) -> list[list[str]]:
    """[section, key, shown value, identity] of one version, in the order the diff lists them: the comparison
    compares identities (a digest of the value itself), since a shown value may be cut or have escapes that a
    different value could show alike."""
    rows: list[list[Any]] = [
        ["registry", "commit", v["commit"]],
        ["registry", "date", v.get("date", "")],
        ["registry", "stages", ", ".join(v.get("stages", []))],
        ["registry", "state", "active" if v.get("active") else "deregistered"],
    ]
    for k, val in (v.get("pointer") or {}).items():
        rows.append(["pointer", k, val])
    if v.get("path"):
        rows.append(["pointer", "path", v["path"]])
    meta = dict(v.get("meta") or {})
    for section in ("metrics", "params"):
        part = meta.pop(section, None)
        if isinstance(part, dict):
            rows += [[section, k, val] for k, val in flat(part)]
        elif part is not None:
            meta[section] = part
    rows += [["meta", k, val] for k, val in flat(meta)]
    rows += [["auto", k, val] for k, val in flat(v.get("auto") or {})]
    rows += [["other", k, val] for k, val in flat(v.get("extra") or {})]
    if v.get("error"):
        rows.append(["other", "error", v["error"]])
    order = {s: i for i, s in enumerate(SECTIONS)}
    out = [[section, key, show(val), identity(val)] for section, key, val in rows]
    return sorted(out, key=lambda r: (order[r[0]], r[1]))


def diff_rows(a: list[list[str]], b: list[list[str]]) -> tuple[str, int, int]:
    """The comparison's table rows as HTML, how many differ, how many in all."""
    ia, ib = {(r[0], r[1]): r for r in a}, {(r[0], r[1]): r for r in b}
    order = {s: i for i, s in enumerate(SECTIONS)}
    keys = sorted(set(ia) | set(ib), key=lambda k: (order[k[0]], k[1]))
    out, changed = [], 0
    for k in keys:
        ra, rb = ia.get(k), ib.get(k)
        differs = ra is None or rb is None or ra[-1] != rb[-1]
        changed += differs
        ca = f"<td>{esc(ra[2])}</td>" if ra else '<td class="missing">(none)</td>'
        cb = f"<td>{esc(rb[2])}</td>" if rb else '<td class="missing">(none)</td>'
        cls = ' class="changed"' if differs else ""
        out.append(f'<tr{cls}><td>{esc(k[0])}</td><td class="mono">{esc(k[1])}</td>{ca}{cb}</tr>')
    return "".join(out), changed, len(keys)


# -- pages ------------------------------------------------------------------------------------
def index_page(site: dict[str, Any]) -> str:
    models = site["models"]
    if not models:
        body = (
            f"<h1>{esc(site['title'])}</h1><p>No models in the registry yet. Name a model with "
            "<code>mvc add PATH --name NAME</code>, commit, and register it with <code>mvc register NAME</code>; "
            "then run <code>mvc ui build</code> again.</p>"
        )
        return page(site["title"], [("models", None)], body, "", site)
    rows = []
    for m in models:
        latest = m["latest"]["version"] if m["latest"] else None
        flags = '<span class="badge warn">deprecated</span>' if m["deprecated"] else ""
        rows.append(
            [
                f'<a href="m/{slug(m["name"])}/index.html">{esc(m["name"])}</a> {flags}',
                f'<span class="mono">{esc(m["path"] or "")}</span>',
                version_link(m, latest, ""),
                stage_badges(m["stages"]),
                f'<span class="num">{len(m["versions"])}</span>',
                when(m["last_change"]),
            ]
        )
    live = sum(not m["deprecated"] for m in models)
    body = (
        f"<h1>{esc(site['title'])}</h1>"
        f'<p class="mute">{len(models)} model(s), {live} active; '
        f"{sum(len(m['versions']) for m in models)} version(s).</p>"
        + table(["model", "path", "latest", "stages", "versions", "last change"], rows, "models")
    )
    return page(f"{site['title']}: models", [("models", None)], body, "", site)


def _history(m: dict[str, Any], events: list[dict[str, Any]], root: str) -> str:
    if not events:
        return '<p class="mute">none</p>'
    rows = [
        [
            when(e["date"]),
            esc(e["action"]),
            f'<span class="badge stage">{esc(e["stage"])}</span>' if e["stage"] else "",
            version_link(m, e["version"], root),
            who(e["tagger"], e["email"]),
            f"<pre>{esc(e['message'])}</pre>",
            f'<span class="mono">{esc(e["tag"])}</span>',
        ]
        for e in events
    ]
    return table(["when", "event", "stage", "version", "by", "message", "tag"], rows, "history")


def model_page(m: dict[str, Any], site: dict[str, Any]) -> str:
    root = "../../"
    name = m["name"]
    latest = m["latest"]["version"] if m["latest"] else None
    flags = ' <span class="badge warn">deprecated</span>' if m["deprecated"] else ""
    parts = [
        f"<h1>{esc(name)}{flags}</h1>",
        '<dl class="kv">',
        f'<dt>path</dt><dd class="mono">{esc(m["path"] or "")}</dd>',
        f"<dt>latest</dt><dd>{version_link(m, latest, root)}</dd>",
        f"<dt>last change</dt><dd>{when(m['last_change'])}</dd>",
        "</dl>",
        f'<p><a href="diff.html">Compare two versions</a> of {esc(name)}.</p>',
        "<h2>Stages</h2>",
    ]
    stages = [
        [
            f'<span class="badge stage">{esc(s)}</span>',
            version_link(m, x["version"], root),
            when(x["date"]),
            f'<span class="mono">{esc(x["tag"])}</span>',
        ]
        for s, x in m["stages"].items()
    ]
    parts.append(table(["stage", "version", "assigned", "tag"], stages) if stages else '<p class="mute">none</p>')
    parts.append("<h2>Versions</h2>")
    rows = [
        [
            version_link(m, v["version"], root),
            when(v.get("date")),
            who(v.get("tagger"), v.get("email")),
            f'<span class="mono">{esc(v["commit"][:10])}</span>',
            stage_badges(v["stages"]),
            "" if v["active"] else '<span class="badge warn">deregistered</span>',
            f'<span class="error">{esc(v["error"])}</span>'
            if v.get("error")
            else esc(human(v.get("size")))
            + (f' <span class="badge warn" title="{esc(v["warning"])}">tag differs</span>' if v.get("warning") else ""),
        ]
        for v in m["versions"]
    ]
    parts.append(table(["version", "registered", "by", "commit", "stages", "state", "size"], rows) if rows else "")
    parts.append("<h2>Metrics</h2>")
    if m["metrics"]:
        parts.append('<div class="charts">' + "".join(chart(k, pts) for k, pts in m["metrics"].items()) + "</div>")
    else:
        parts.append('<p class="mute">No version records metrics (<code>[meta.metrics]</code>).</p>')
    parts.append("<h2>Stage history</h2>")
    parts.append(_history(m, m["events"], root))
    parts.append("<h2>Lineage</h2>")
    by_commit: dict[str, list[str]] = {}
    for v in m["versions"]:
        by_commit.setdefault(v["commit"], []).append(v["version"])
    lineage = [
        [
            when(c["date"]),
            f'<span class="mono">{esc(c["commit"][:10])}</span>',
            who(c["author"], c["email"]),
            f"<pre>{esc(c['message'])}</pre>",
            esc(", ".join(c["changes"])),
            " ".join(
                [version_link(m, v, root) for v in by_commit.get(c["commit"], [])]
                + [
                    f'{version_link(m, a["version"], root)} <span class="mute">(at {esc(a["commit"][:10])}, '
                    "the same model)</span>"
                    for a in c.get("also", [])
                ]
            ),
        ]
        for c in m["lineage"]
    ]
    if lineage:
        parts.append('<p class="mute">The commits reachable from HEAD that changed the pointer, newest first.</p>')
        parts.append(table(["date", "commit", "author", "message", "change", "versions"], lineage, "lineage"))
    else:
        parts.append('<p class="mute">No commit reachable from HEAD changed its pointer.</p>')
    crumbs = [("models", root + "index.html"), (name, None)]
    return page(f"{name}: model", crumbs, "".join(parts), root, site)


def version_page(m: dict[str, Any], v: dict[str, Any], site: dict[str, Any]) -> str:
    root = "../../../"
    name, version = m["name"], v["version"]
    mine = [x["version"] for x in m["versions"]]
    at = mine.index(version)
    older = mine[at + 1] if at + 1 < len(mine) else mine[at - 1] if at else version  # the oldest: with the next
    state = "active" if v["active"] else '<span class="badge warn">deregistered</span>'
    parts = [
        f"<h1>{esc(name)} {esc(version)}</h1>",
        '<dl class="kv">',
        f"<dt>state</dt><dd>{state}</dd>",
        f"<dt>stages</dt><dd>{stage_badges(v['stages']) or NONE}</dd>",
        f'<dt>commit</dt><dd class="mono">{esc(v["commit"])}</dd>',
        f'<dt>path</dt><dd class="mono">{esc(v.get("path") or "")}</dd>',
        f"<dt>registered</dt><dd>{when(v.get('date'))} by {who(v.get('tagger'), v.get('email'))}</dd>",
        f'<dt>tag</dt><dd class="mono">{esc(v.get("tag", ""))}</dd>',
        f"<dt>message</dt><dd><pre>{esc(v.get('message', ''))}</pre></dd>",
        "</dl>",
        f'<p><a href="../index.html">All versions of {esc(name)}</a> · '
        f'<a href="../diff.html#{esc(quote(older, safe=""))}..{esc(quote(version, safe=""))}">compare with '
        f"{esc(older)}</a></p>",
    ]
    if v.get("error"):
        parts.append(f'<p class="error">{esc(v["error"])}</p>')
    if v.get("warning"):
        parts.append(f'<p class="error">{esc(v["warning"])}</p>')
    pointer = dict(v.get("pointer") or {})
    if "size" in pointer:
        pointer["size"] = f"{pointer['size']} ({human(pointer['size'])})"
    parts += ["<h2>Pointer</h2>", kv(list(pointer.items()))]
    meta = dict(v.get("meta") or {})
    for section, title in (
        ("metrics", "Metrics"),
        ("params", "Parameters"),
        ("data", "Data"),
        ("training", "Training"),
    ):
        part = meta.pop(section, None)
        if part is not None:
            parts += [f"<h2>{title}</h2>", kv(flat(part) if isinstance(part, dict) else [(section, part)])]
    artifacts = meta.pop("artifacts", None)
    if artifacts is not None:
        parts.append("<h2>Artifacts</h2>")
        if isinstance(artifacts, dict) and all(isinstance(a, dict) for a in artifacts.values()):
            rows = [
                [
                    f'<span class="mono">{esc(k)}</span>',
                    f'<span class="mono">{esc(a.get("path", ""))}</span>',
                    f'<span class="mono">{esc(a.get("oid", ""))}</span>',
                    esc(human(a.get("size"))),
                ]
                for k, a in sorted(artifacts.items())
            ]
            parts.append(table(["name", "path", "oid", "size"], rows))
        else:
            parts.append(kv([("artifacts", artifacts)]))
    parts += ["<h2>Other meta</h2>", kv(flat(meta))]
    parts += ["<h2>Recorded automatically</h2>", kv(flat(v.get("auto") or {}))]
    if v.get("extra"):
        parts += ["<h2>Other pointer keys</h2>", kv(flat(v["extra"]))]
    mine = [e for e in m["events"] if e["version"] == version]
    parts += ["<h2>History</h2>", _history(m, mine, root)]
    crumbs = [("models", root + "index.html"), (name, "../index.html"), (version, None)]
    return page(f"{name} {version}", crumbs, "".join(parts), root, site)


def diff_page(m: dict[str, Any], site: dict[str, Any]) -> str:
    root = "../../"
    name, versions = m["name"], m["versions"]
    records = {v["version"]: record_rows(m, v) for v in versions}
    parts = [f"<h1>Compare versions of {esc(name)}</h1>"]
    if not versions:
        parts.append('<p class="mute">No registered versions.</p>')
    else:
        b = versions[0]["version"]
        a = versions[1]["version"] if len(versions) > 1 else b

        def select(ident: str, chosen: str) -> str:
            opts = "".join(
                f'<option value="{esc(v["version"])}"{" selected" if v["version"] == chosen else ""}>'
                f"{esc(v['version'])}</option>"
                for v in versions
            )
            return f'<label>{ident.upper()} <select id="{ident}" name="{ident}">{opts}</select></label>'

        rows, changed, total = diff_rows(records[a], records[b])
        parts += [
            f'<form class="pick">{select("a", a)} {select("b", b)}</form>',
            "<noscript><p>Without JavaScript this page compares the two latest versions.</p></noscript>",
            f'<p id="summary">{changed} of {total} values differ between {esc(a)} and {esc(b)}</p>',
            '<table class="diff"><thead><tr><th>section</th><th>key</th><th>A</th><th>B</th></tr></thead>',
            f'<tbody id="rows">{rows}</tbody></table>',
            '<script type="application/json" id="records">',
            json_blob({"sections": list(SECTIONS), "records": records}),
            f"</script><script>{SCRIPT}</script>",
        ]
    crumbs = [("models", root + "index.html"), (name, "index.html"), ("compare", None)]
    return page(f"{name}: compare versions", crumbs, "".join(parts), root, site)


def render(site: dict[str, Any]) -> dict[str, str]:
    """{path in the site (posix): its text} of every page and the style sheet."""
    out = {"style.css": CSS, "index.html": index_page(site)}
    for m in site["models"]:
        base = f"m/{slug(m['name'])}/"
        out[base + "index.html"] = model_page(m, site)
        out[base + "diff.html"] = diff_page(m, site)
        for v in m["versions"]:
            out[f"{base}v/{slug(v['version'])}.html"] = version_page(m, v, site)
    return out
