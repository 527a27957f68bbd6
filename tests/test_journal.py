"""The journal (``.mvc/remotes.db``): what it answers about a remote, whichever mvc wrote its rows."""

from __future__ import annotations

import sqlite3

from mvc.objects import pack as pk
from mvc.objects.journal import Journal

KEY = "file:///somewhere"
A, B, C = (f"xxh128:{c * 32}" for c in "abc")


def test_objects_of_a_recorded_pack_are_known_until_the_pack_is_forgotten(tmp_path):
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
