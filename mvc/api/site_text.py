"""Text pieces of the pages of ``mvc ui build``: escaping (``esc``: HTML's specials, and controls and bidi
overrides shown as escapes), values as tables show them (``show``: cut at VALUE_MAX, with a digest of the whole)
and as the compare page tells them apart (``identity``), and the small HTML helpers every page uses. Pure
functions of their arguments; ``mvc.api.site_render`` builds the pages from them."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from mvc import progress as progressmod

VALUE_MAX = 2000  # characters of one value shown in a table; the version page's record shows it whole


_INVISIBLE = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def esc(value: Any) -> str:
    """Any value as text safe in an element and in a quoted attribute; controls and bidi overrides (which reorder
    what a reader sees: a collaborator's 'gnp.exe') shown as \\u202e."""
    text = value if isinstance(value, str) else str(value)
    if not text.isascii() or not text.isprintable():
        text = _INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    # most strings need nothing: five scans in C cost less than escape()'s five replacements and its call
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return escape(text, quote=True)
    return text


def slug(name: str) -> str:
    """A name as one file name, the same on every file system: characters other than a-z, 0-9, '.'
    and '-' (capitals too, for case-insensitive disks) become ``_XX``; never '.' or '..'."""
    out = re.sub(r"[^a-z0-9.\-]", lambda m: "".join(f"_{b:02x}" for b in m.group().encode()), name)
    return out if out.strip(".") else out.replace(".", "_2e")


def json_blob(data: Any) -> str:
    """JSON to embed in an HTML <script type="application/json"> element: nothing in it can end the element."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for ch, code in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, code)
    return text


def show(value: Any, whole: bool = False) -> str:
    """One value as the text the tables and the diff show (not yet escaped): one longer than VALUE_MAX characters
    cut there, followed by its length and a digest of the whole, so that two values differing past the cut never
    show alike (the comparison compares these texts); ``whole``: not cut (the version page's record)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    original = text
    if not text.isascii() or not text.isprintable():  # (the compare page's script shows these texts as they are)
        text = _INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    if whole or len(text) <= VALUE_MAX:
        return text
    from mvc.storage.fileio import hexdigest_bytes

    digest = hexdigest_bytes(original.encode("utf-8", "surrogatepass"))[:12]
    return f"{text[:VALUE_MAX]}… ({len(text)} characters, xxh128 {digest}…)"


def human(n: Any) -> str:
    """A size as mvc prints sizes; "" for what is not one (a record may hold anything)."""
    return progressmod.human(n) if isinstance(n, int) else ""


def when(date: str | None) -> str:
    if not date:
        return '<span class="mute">—</span>'
    return f'<time datetime="{esc(date)}" title="{esc(date)}">{esc(date[:16].replace("T", " "))}</time>'


def who(name: str | None, email: str | None) -> str:
    if not name and not email:
        return '<span class="mute">—</span>'
    return f'<span title="{esc(email or "")}">{esc(name or email)}</span>'


def flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested tables as (dotted key, value) pairs, in key order."""
    if isinstance(value, dict) and value:
        return [pair for k in sorted(value) for pair in flat(value[k], f"{prefix}{k}.")]
    return [(prefix[:-1], value)] if prefix else []


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """head: plain text; rows: cells already HTML."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def kv(pairs: list[tuple[str, Any]]) -> str:
    if not pairs:
        return '<p class="mute">none</p>'
    return table(
        ["key", "value"],
        [[f'<span class="mono">{esc(k)}</span>', f"<pre>{esc(show(v, whole=True))}</pre>"] for k, v in pairs],
    )


def identity(value: Any) -> str:
    """What tells two values apart on the compare page: a digest of the value's type and its whole text."""
    from mvc.storage.fileio import hexdigest_bytes

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return hexdigest_bytes(f"{type(value).__name__}:{text}".encode("utf-8", "surrogatepass"))[:16]
