"""Transfers report progress through the API's progress factory, also when checkout and get fetch
missing objects on their own (the CLI draws those bars on a terminal)."""

from __future__ import annotations

import shutil

from conftest import make_file


class Recorder:
    def __init__(self):
        self.bars: list[dict] = []

    def __call__(self, desc: str, total: int):
        bar = {"desc": desc, "total": total, "done": 0, "objects": (0, 0), "closed": False}
        self.bars.append(bar)
        recorder = self

        class Bar:
            def update(self, n: int) -> None:
                bar["done"] += n

            def count(self, done: int, total: int) -> None:
                bar["objects"] = (done, total)

            def close(self) -> None:
                assert not any(b is not bar and not b["closed"] for b in recorder.bars[-1:]), "bars overlap"
                bar["closed"] = True

        return Bar()

    def named(self, prefix: str) -> list[dict]:
        return [b for b in self.bars if b["desc"].startswith(prefix)]


def setup(repo, mvc_cli, tmp_path):
    make_file(repo / "model.bin", 3 << 20, seed=1)
    for i in range(20):
        make_file(repo / "data" / f"f{i:02d}", 1000 + i, seed=10 + i)
    mvc_cli("add", "model.bin", "data")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    mvc_cli("push")
    shutil.rmtree(repo / ".mvc" / "cache")


def test_checkout_shows_the_fetch_it_needs(repo, mvc_cli, tmp_path):
    from mvc.api import checkout as workspace
    from mvc.repo.repository import Repo

    setup(repo, mvc_cli, tmp_path)
    (repo / "model.bin").unlink()
    shutil.rmtree(repo / "data")
    bars = Recorder()
    workspace.checkout(repo=Repo(str(repo)), progress=bars)
    fetches = bars.named("fetching from origin")
    assert sum(b["total"] for b in fetches) == (3 << 20) + sum(1000 + i for i in range(20))
    assert all(b["done"] >= b["total"] and b["closed"] for b in fetches)
    assert sum(b["objects"][1] for b in fetches) == 22  # data's manifest (to plan), then the 21 files


def test_get_shows_the_fetch_before_writing(repo, mvc_cli, tmp_path):
    from mvc.api import repoget
    from mvc.repo.repository import Repo

    setup(repo, mvc_cli, tmp_path)
    bars = Recorder()
    repoget.get("data", tmp_path / "out", repo=Repo(str(repo)), progress=bars)
    descs = [b["desc"] for b in bars.bars]
    assert descs.index(next(d for d in descs if d.startswith("fetching"))) < descs.index(f"writing {tmp_path / 'out'}")
    assert bars.named("fetching from origin")[-1]["objects"] == (20, 20)
