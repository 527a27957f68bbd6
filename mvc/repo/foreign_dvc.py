"""``.dvc`` files at revisions before ``mvc import-dvc``, read as the mvc pointers the import wrote for them
(docs/FORMAT.md, "Imported history"; the hook is ``mvc.repo.foreign``). The import writes the same bytes
(``pointer_bytes``), so the commit that switches a path from DVC to mvc changes nothing in its lineage."""

from __future__ import annotations

from typing import Any

from mvc.errors import ForeignError
from mvc.format import dvcfile
from mvc.format import pointer as ptrfmt

SUFFIX = ".dvc"
LINK_MODE = 0o120000  # a symlink's git file mode: never read as a file
SKIP_DIRS = (".git", ".dvc", ".mvc")


def pointer_bytes(out: dvcfile.Out, entry: tuple[str, int, int | None]) -> bytes:
    """The mvc pointer of a DVC output whose content was imported as entry (oid, size, nfiles)."""
    oid, size, nfiles = entry
    p = ptrfmt.Pointer("dir" if out.is_dir else "file", oid, size, nfiles if out.is_dir else None)
    p.meta = {"dvc": out.record}
    return ptrfmt.dumps(p)


def dvc_files_at(repo: Any, commit: str) -> dict[str, str]:
    """{repository-relative path of a .dvc file: its blob id} in commit's tree."""
    git = repo.git.repo
    found: dict[str, str] = {}

    def walk(tree: Any, prefix: str) -> None:
        for entry in tree:
            path = prefix + entry.name
            if entry.type_str == "tree":
                if not (prefix == "" and entry.name in SKIP_DIRS):
                    walk(git[entry.id], path + "/")
            elif entry.type_str == "blob" and path.endswith(SUFFIX) and entry.filemode != LINK_MODE:
                found[path] = str(entry.id)

    walk(repo.git.resolve(commit).tree, "")
    return found


def outs_of(repo: Any, path: str, blob: str) -> list[dvcfile.Out]:
    """The outputs of the .dvc file at path whose bytes are blob (parsed once per Repo); none if it is damaged."""
    memo = repo.__dict__.setdefault("_dvc_outs", {})
    if (path, blob) not in memo:
        try:
            memo[path, blob] = dvcfile.parse_dvc(repo.git.blob(blob), path)
        except ForeignError:  # an old revision's damaged file: it names nothing mvc can read
            memo[path, blob] = []
    return memo[path, blob]


def _known(repo: Any, table: Any) -> dict[str, tuple[str, int, int | None]]:
    memo = repo.__dict__.get("_dvc_map")
    if memo is None:
        memo = repo.__dict__["_dvc_map"] = dvcfile.imported(table, "the dvc table of .mvc/imported.toml")
    return memo


def pointers_at(repo: Any, commit: str, table: Any) -> dict[str, bytes]:
    known = _known(repo, table)
    found = {}
    for path, blob in dvc_files_at(repo, commit).items():
        for out in outs_of(repo, path, blob):
            if out.md5 in known:
                found[out.path + ptrfmt.SUFFIX] = pointer_bytes(out, known[out.md5])
    return found


def pointer_of(repo: Any, commit: str, rel: str, table: Any) -> bytes | None:
    """The pointer of rel at commit from ``rel.dvc`` (where ``dvc add`` writes it), or None."""
    path = rel + SUFFIX
    blob = repo.git.blob_ids(commit, [path])[path]
    if blob is None:
        return None
    known = _known(repo, table)
    for out in outs_of(repo, path, blob):
        if out.path == rel and out.md5 in known:
            return pointer_bytes(out, known[out.md5])
    return None
