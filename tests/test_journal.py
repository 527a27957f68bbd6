"""The journal (``.mvc/remotes.db``): what it answers about a remote, whichever mvc wrote its rows."""

from __future__ import annotations

import sqlite3

import pytest

from mvc.objects import journal
from mvc.objects import pack as pk
from mvc.objects.journal import Journal

KEY = "file:///somewhere"
A, B, C = (f"xxh128:{c * 32}" for c in "abc")


@pytest.fixture(params=["json", "rows"])
def rows_as(request, monkeypatch):
    """Rows handed to SQLite as one JSON array, and one by one (an SQLite without JSON): the same answers."""
    monkeypatch.setattr(journal, "_json_rows", None if request.param == "json" else False)
    return request.param


def test_objects_of_a_recorded_pack_are_known_until_the_pack_is_forgotten(tmp_path, rows_as):
    jr = Journal(str(tmp_path / "remotes.db"))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10), pk.Entry(B, 10, 5)])])
    jr.add(KEY, [C])  # stored alone
    assert jr.known(KEY, [A, B, C, "xxh128:" + "d" * 32]) == {A, B, C}
    assert jr.known("file:///elsewhere", [A, C]) == set()
    assert jr.locate(KEY, [A, C]) == {A: ("1" * 32, pk.Entry(A, 0, 10))}
    jr.forget_packs(KEY, ["1" * 32])
    assert jr.known(KEY, [A, B, C]) == {C}


def test_a_journal_whose_packed_objects_are_in_present_too_answers_the_same(tmp_path):
    """An mvc before 0.5 recorded each packed object in ``present`` as well: those rows are read, and forgotten
    with their pack."""
    path = tmp_path / "remotes.db"
    jr = Journal(str(path))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])])
    db = sqlite3.connect(path)
    db.execute("INSERT INTO present VALUES (1, ?)", (A,))
    db.commit()
    db.close()
    jr = Journal(str(path))
    assert jr.known(KEY, [A]) == {A}
    jr.forget_packs(KEY, ["1" * 32])
    assert jr.known(KEY, [A]) == set()


def test_many_rows_at_once_and_a_remote_with_none(tmp_path, rows_as):
    jr = Journal(str(tmp_path / "remotes.db"))
    oids = [f"xxh128:{i:032x}" for i in range(5000)]
    assert jr.known(KEY, oids) == set()  # nothing recorded yet
    jr.add_packs(KEY, [("2" * 32, [pk.Entry(o, 7 * i, 7) for i, o in enumerate(oids[::2])])])
    jr.add(KEY, [oids[0]])  # a row of ``present``: the wanted oids go to SQLite too
    assert jr.known(KEY, oids[:3]) == {oids[0], oids[2]}
    assert journal._json_rows is (rows_as == "json")
    assert jr.known(KEY, reversed(oids)) == set(oids[::2])
    got = jr.locate(KEY, oids[:6])
    assert got == {oids[i]: ("2" * 32, pk.Entry(oids[i], 7 * (i // 2), 7)) for i in (0, 2, 4)}
    assert jr.known("file:///elsewhere", oids) == set()


def test_packs_recorded_while_they_are_written_count_once_they_are(tmp_path):
    """A push records its last packs while they are still being uploaded: another reader sees none of the rows
    until ``written`` returns; if it raises, nothing is recorded and its error goes on; a journal that cannot
    be written still waits for it."""
    path = str(tmp_path / "remotes.db")
    jr = Journal(path)
    seen: list[set[str]] = []

    def written() -> None:
        seen.append(Journal(path).known(KEY, [A, B]))

    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])], written)
    assert seen == [set()] and jr.known(KEY, [A, B]) == {A}

    class Failed(Exception):
        pass

    def fails() -> None:
        raise Failed

    with pytest.raises(Failed):
        jr.add_packs(KEY, [("2" * 32, [pk.Entry(B, 0, 10)])], fails)
    assert jr.known(KEY, [A, B]) == {A} and Journal(path).known(KEY, [A, B]) == {A}

    other = Journal(path)
    other._connect(create=True).execute("PRAGMA busy_timeout = 10")  # not a minute
    locked = sqlite3.connect(path, isolation_level=None)
    locked.execute("BEGIN EXCLUSIVE")
    calls: list[int] = []
    other.add_packs(KEY, [("3" * 32, [pk.Entry(B, 0, 10)])], lambda: calls.append(1))
    locked.execute("ROLLBACK")
    assert calls == [1] and jr.known(KEY, [B]) == set()
    jr.add_packs(KEY, [], lambda: calls.append(2))
    assert calls == [1, 2]


def test_packs_another_process_records_are_found_once_their_names_are_seen(tmp_path):
    """A journal that found nothing recorded for a remote stops asking; once it lists pack names another process
    recorded meanwhile (a reader then skips their indexes), their objects are found through it."""
    path = str(tmp_path / "remotes.db")
    mine, other = Journal(path), Journal(path)
    mine.add("file:///elsewhere", [C])
    assert mine.locate(KEY, [A]) == {}  # nothing recorded for KEY: not asked again
    other.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])])
    assert mine.pack_names(KEY) == {"1" * 32}
    assert mine.locate(KEY, [A]) == {A: ("1" * 32, pk.Entry(A, 0, 10))}


def test_packs_an_older_mvc_recorded_as_rows_are_read_beside_those_recorded_whole(tmp_path):
    """An mvc before 0.9 recorded a pack as a row per object (tables ``packs`` and ``packed``); this one records it
    as one row of ``pack_entries``. Both are read, merged, and forgotten with their packs."""
    path = tmp_path / "remotes.db"
    jr = Journal(str(path))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])])  # the new way
    db = sqlite3.connect(path)
    db.execute("INSERT INTO packs VALUES (1, ?)", ("2" * 32,))  # the old way
    db.execute("INSERT INTO packed VALUES (1, ?, ?, 3, 4)", (B, "2" * 32))
    db.commit()
    db.close()
    assert jr.pack_names(KEY) == {"1" * 32, "2" * 32}
    assert jr.known(KEY, [A, B, C]) == {A, B}
    assert jr.locate(KEY, [A, B]) == {A: ("1" * 32, pk.Entry(A, 0, 10)), B: ("2" * 32, pk.Entry(B, 3, 4))}
    assert jr.pack_entries(KEY) == {"1" * 32: [pk.Entry(A, 0, 10)], "2" * 32: [pk.Entry(B, 3, 4)]}
    jr.forget_packs(KEY, ["1" * 32, "2" * 32])
    assert jr.known(KEY, [A, B]) == set() and jr.pack_names(KEY) == set()


def test_an_object_downloaded_from_a_pack_is_forgotten_with_it_unless_another_pack_holds_it(tmp_path):
    jr = Journal(str(tmp_path / "remotes.db"))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10), pk.Entry(B, 10, 5)]), ("2" * 32, [pk.Entry(B, 0, 5)])])
    jr.add(KEY, [A, B, C])  # fetched from them (and C stored alone)
    jr.forget_packs(KEY, ["1" * 32])
    assert jr.known(KEY, [A, B, C]) == {B, C}
    assert jr.locate(KEY, [A, B]) == {B: ("2" * 32, pk.Entry(B, 0, 5))}


def test_a_pack_row_of_another_shape_is_passed_over_and_another_process_records_are_seen(tmp_path):
    path = tmp_path / "remotes.db"
    mine = Journal(str(path))
    mine.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])])
    assert mine.known(KEY, [A, B]) == {A}  # read once, then kept
    db = sqlite3.connect(path)
    db.execute("INSERT INTO pack_entries VALUES (1, ?, ?, ?)", ("2" * 32, b"\x00" * 15, b""))  # not 16 bytes an oid
    db.execute("INSERT INTO pack_entries VALUES (1, ?, ?, ?)", ("3" * 32, bytes(16), b"\x01" * 8))  # numbers short
    db.execute("INSERT INTO pack_entries VALUES (1, ?, ?, ?)", ("4" * 32, "text", b""))
    db.commit()
    db.close()
    other = Journal(str(path))
    other.add_packs(KEY, [("5" * 32, [pk.Entry(B, 7, 3)])])  # another process: seen through data_version
    assert mine.known(KEY, [A, B, "xxh128:" + "0" * 32]) == {A, B}
    assert mine.locate(KEY, [B]) == {B: ("5" * 32, pk.Entry(B, 7, 3))}
    assert set(mine.pack_entries(KEY)) >= {"1" * 32, "5" * 32}


def test_a_pack_whose_entries_the_journal_cannot_hold_is_not_recorded(tmp_path):
    jr = Journal(str(tmp_path / "remotes.db"))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry("sha256:" + "a" * 32, 0, 1)]), ("2" * 32, [pk.Entry(A, 2**63, 1)])])
    assert jr.known(KEY, [A]) == set() and jr.pack_names(KEY) == set()


def test_packs_this_journal_records_after_reading_are_found_with_the_rest(tmp_path, monkeypatch):
    """Once the packs are read, those recorded since by the same journal are added to what it read, not read again
    (a push of many large files records packs after each): the answers are those of a fresh read."""
    jr = Journal(str(tmp_path / "remotes.db"))
    jr.add_packs(KEY, [("1" * 32, [pk.Entry(A, 0, 10)])])
    assert jr.known(KEY, [A, B]) == {A}
    reads: list[str] = []
    real = journal._pack_oids
    monkeypatch.setattr(journal, "_pack_oids", lambda d: reads.append("read") or real(d))
    jr.add_packs(KEY, [("2" * 32, [pk.Entry(B, 3, 4)])])
    assert jr.known(KEY, [A, B, C]) == {A, B} and reads == []
    assert jr.locate(KEY, [B]) == {B: ("2" * 32, pk.Entry(B, 3, 4))}
    assert Journal(str(tmp_path / "remotes.db")).locate(KEY, [A, B]) == jr.locate(KEY, [A, B])
