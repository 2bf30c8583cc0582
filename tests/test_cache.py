"""The SQLite perception cache: keys, round trip, damaged rows, processes sharing it."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from vidsense.services.perception import ModelCard
from vidsense.services.perception.cache import PerceptionCache, _notes_key, cache_key
from vidsense.services.timeline import Observation, make_windows

CARD = ModelCard(name="audio-tags", version="1", modalities=("sound",), needs_video=False, needs_audio=True)
WINDOWS = make_windows(6.0)
SHA = "ab" * 32


def _observations(n: int = 3, tag: str = "speech") -> list[Observation]:
    return [Observation(i, 2.0 * i, 2.0 * i + 2, "sound", "audio-tags", f"{tag} {i}", 0.5 + i / 10, "sound") for i in range(n)]


def test_key_is_stable_and_changes_with_everything_that_changes_output() -> None:
    params = {"weights": "x", "threshold": 0.2, "top_k": 3}
    base = cache_key(SHA, CARD, params, WINDOWS)
    assert base == cache_key(SHA, CARD, dict(reversed(params.items())), WINDOWS)  # order-free
    variants = [
        cache_key("cd" * 32, CARD, params, WINDOWS),
        cache_key(SHA, CARD, {**params, "threshold": 0.3}, WINDOWS),
        cache_key(SHA, CARD, {**params, "weights": "y"}, WINDOWS),
        cache_key(SHA, ModelCard("audio-tags", "2", ("sound",)), params, WINDOWS),
        cache_key(SHA, ModelCard("speech", "1", ("speech",)), params, WINDOWS),
        cache_key(SHA, CARD, params, make_windows(6.0, window_s=3.0)),
        cache_key(SHA, CARD, params, WINDOWS, extra={"frames_per_window": 4}),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # Non-JSON values (paths, tuples) are allowed in params.
    assert cache_key(SHA, CARD, {"model": Path("/m"), "t": (1, 2)}, WINDOWS)


def test_round_trip_miss_hit_and_empty_result(tmp_path: Path) -> None:
    cache = PerceptionCache(tmp_path / "c.sqlite")
    key = cache_key(SHA, CARD, {}, WINDOWS)
    assert cache.get(key) is None
    obs = _observations()
    cache.put(key, obs, model="audio-tags", video_sha256=SHA)
    assert cache.get(key) == obs
    # "saw nothing" is a result too, and must not read as a miss
    empty = cache_key(SHA, CARD, {"threshold": 0.99}, WINDOWS)
    cache.put(empty, [], model="audio-tags")
    assert cache.get(empty) == []
    # a second instance on the same file sees the rows
    assert PerceptionCache(tmp_path / "c.sqlite").get(key) == obs
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_for_home_puts_the_file_under_home(tmp_path: Path) -> None:
    cache = PerceptionCache.for_home(tmp_path)
    cache.put("k", _observations(1))
    assert (tmp_path / "cache" / "perception.sqlite").is_file()
    assert PerceptionCache.for_home(str(tmp_path)).get("k") == _observations(1)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE observations SET payload = '[{\"window\": 0' WHERE key = 'k'",  # truncated JSON, checksum also wrong
        "UPDATE observations SET checksum = 'deadbeef' WHERE key = 'k'",  # good JSON, bad checksum
        "UPDATE observations SET payload = replace(payload, 'speech 0', 'speech X') WHERE key = 'k'",  # bit rot
    ],
)
def test_damaged_row_is_a_miss_and_is_deleted(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path)
    cache.put("k", _observations(), model="audio-tags")
    cache.put("other", _observations(1), model="speech")
    with sqlite3.connect(path) as db:
        db.execute(damage)
    with caplog.at_level(logging.WARNING, logger="vidsense.services.perception.cache"):
        assert cache.get("k") is None
    assert "damaged row" in caplog.text
    assert cache.stats().entries == 1  # deleted, the other row untouched
    assert cache.get("other") == _observations(1)
    cache.put("k", _observations())  # recomputed and stored again
    assert cache.get("k") == _observations()


def test_row_with_valid_checksum_but_wrong_fields_is_a_miss(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path)
    cache.put("k", _observations(1))
    payload = '[{"window": 0, "modality": "smell"}]'
    with sqlite3.connect(path) as db:
        db.execute("UPDATE observations SET payload = ?, checksum = ?", (payload, hashlib.sha256(payload.encode()).hexdigest()))
    assert cache.get("k") is None


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    cache = PerceptionCache(path)
    assert cache.get("k") is None
    cache.put("k", _observations(1))
    assert cache.get("k") == _observations(1)
    assert len(list(tmp_path.glob("c.sqlite.damaged-*"))) == 1


def test_stats_and_clear(tmp_path: Path) -> None:
    cache = PerceptionCache(tmp_path / "c.sqlite")
    for i in range(3):
        cache.put(f"a{i}", _observations(), model="audio-tags")
    cache.put("s0", _observations(1), model="speech")
    cache.get("a0")
    cache.get("a1")
    cache.get("nope")
    stats = cache.stats()
    assert stats.entries == 4
    assert stats.per_model == {"audio-tags": 3, "speech": 1}
    assert stats.hits == 2 and stats.misses == 1
    assert stats.bytes > 0 and stats.path.endswith("c.sqlite")
    assert stats.to_dict()["per_model"]["speech"] == 1
    assert cache.clear() == 4
    assert cache.stats().entries == 0
    assert cache.get("a0") is None
    assert cache.clear() == 0


def _worker(path: str, worker: int, n: int, out: "multiprocessing.Queue[tuple[int, int, str]]") -> None:
    try:
        cache = PerceptionCache(Path(path))
        seen = 0
        for i in range(n):
            cache.put(f"w{worker}-{i}", _observations(2, tag=f"w{worker}"), model=f"model{worker}")
            # everyone also reads the shared key and the other workers' rows
            cache.put("shared", _observations(1, tag=f"w{worker}"), model="shared")
            seen += cache.get("shared") is not None
            for other in range(4):
                got = cache.get(f"w{other}-{i // 2}")
                assert got is None or got == _observations(2, tag=f"w{other}")
        out.put((worker, seen, ""))
    except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying silently
        out.put((worker, -1, repr(exc)))


def test_concurrent_processes_share_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path)
    cache.put("warm", [])  # the parent holds an open connection across fork()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    n = 40
    procs = [ctx.Process(target=_worker, args=(str(path), w, n, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(err == "" for _, _, err in results), results
    assert all(seen == n for _, seen, _ in results)
    stats = cache.stats()
    assert stats.entries == 4 * n + 2
    assert all(stats.per_model[f"model{w}"] == n for w in range(4))
    assert cache.get("w3-39") == _observations(2, tag="w3")
    assert cache.get("warm") == []


def test_a_video_probe_is_stored_and_reused_by_content(tmp_path: Path, example_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from vidsense.services.media import video

    cache = PerceptionCache(tmp_path / "perception.sqlite")
    first = video.Media.open(example_video, cache=cache)
    calls = []
    real = video.probe
    monkeypatch.setattr(video, "probe", lambda p: calls.append(p) or real(p))
    copy = tmp_path / "same_bytes.mp4"
    shutil.copyfile(example_video, copy)
    again = video.Media.open(copy, cache=cache)
    assert calls == []  # same bytes under another name: no probe
    assert again.info.path == str(copy) and {**vars(again.info), "path": ""} == {**vars(first.info), "path": ""}
    assert cache.stats().per_model.get("probe") == 1
    # A damaged probe row is a miss: the file is probed again and the row rewritten.
    with sqlite3.connect(cache.path) as db:
        db.execute("UPDATE observations SET payload = '[1]' WHERE model = 'probe'")
    assert video.Media.open(copy, cache=cache).info.duration_s == first.info.duration_s
    assert len(calls) == 1


def _damage_pages(path: Path) -> None:
    """Overwrite every page after the first two (the header and schema stay readable)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) > 3 * page, "the test needs a file of several pages"
    for start in range(2 * page, len(data), page):
        data[start : start + page] = bytes((i * 37 + 11) % 256 for i in range(min(page, len(data) - start)))
    path.write_bytes(bytes(data))


def test_damage_below_the_header_moves_the_file_aside_and_clear_always_works(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path)
    for i in range(200):
        cache.put(f"k{i}", _observations(3, tag="x" * 200))
    cache.close()
    _damage_pages(path)
    # The file still opens (its header is fine); the damage shows only when pages are read.
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        sqlite3.connect(path).execute("SELECT COUNT(*), SUM(LENGTH(payload)) FROM observations").fetchall()
    damaged = PerceptionCache(path)
    with caplog.at_level(logging.WARNING):
        assert damaged.get("k150") is None  # a miss, not an error
    assert "not a usable SQLite database" in caplog.text and len(list(tmp_path.glob("c.sqlite.damaged-*"))) == 1
    damaged.put("k1", _observations(1))
    assert damaged.get("k1") == _observations(1)
    # "cache clear" on a file damaged the same way: it works and leaves an empty, usable cache.
    for i in range(200):
        damaged.put(f"k{i}", _observations(3, tag="x" * 200))
    damaged.close()
    _damage_pages(path)
    again = PerceptionCache(path)
    again.clear()
    assert again.stats().entries == 0 and len(list(tmp_path.glob("c.sqlite.damaged-*"))) == 2


def _open_and_put(path: str, worker: int, out: "multiprocessing.Queue[str]") -> None:
    try:
        cache = PerceptionCache(Path(path))
        cache.put(f"w{worker}", _observations(1))
        out.put("" if cache.get(f"w{worker}") == _observations(1) else "row lost")
    except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying silently
        out.put(repr(exc))


def _in_processes(target, path: Path, n: int = 4) -> list[str]:
    """Run ``target(path, worker, queue)`` in ``n`` forked processes at once; what each put on the queue ('' when it went well)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(str(path), w, out)) for w in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return results


def test_processes_opening_a_fresh_cache_at_once_all_succeed(tmp_path: Path) -> None:
    for trial in range(10):
        results = _in_processes(_open_and_put, tmp_path / f"fresh{trial}.sqlite")
        assert results == [""] * 4, (trial, results)


def _big(tag: str, kb: int = 10) -> list[Observation]:
    return [Observation(0, 0.0, 2.0, "sight", "visual-tags", f"{tag} " + "x" * (kb * 1024), 0.5, "tag")]


def _db_size(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]


def _disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {k for (k,) in db.execute("SELECT key FROM observations")}


class _Clock:
    """Stands in for the cache's ``time`` module: a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int(self.now * 1e9)

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_eviction_keeps_the_cache_under_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path, max_mb=0.25)
    for i in range(100):  # about 1 MB of payloads through a 0.25 MB cache
        cache.put(f"k{i}", _big(f"row {i}"), model="visual-tags")
        assert _db_size(path) <= cache.max_bytes and _disk_size(path) <= cache.max_bytes, i  # the log counts too
    kept = _keys(path)
    assert 10 <= len(kept) < 25
    # The newest rows are the ones kept, and they read back intact.
    assert kept == {f"k{i}" for i in range(100 - len(kept), 100)}
    assert cache.get("k99") == _big("row 99")
    assert cache.stats().max_bytes == int(0.25 * 2**20)


def test_eviction_removes_the_least_recently_used_not_the_oldest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidsense.services.perception import cache as cache_module

    clock = _Clock()
    monkeypatch.setattr(cache_module, "time", clock)
    path = tmp_path / "c.sqlite"
    cache = PerceptionCache(path, max_mb=0.25)
    for i in range(15):
        clock.now += 100
        cache.put(f"k{i}", _big(f"row {i}"), model="visual-tags")
        cache.put_notes(f"k{i}", [f"note {i}"], model="visual-tags")
    assert _keys(path) >= {"k0", "k1", "k2"}  # nothing evicted yet
    clock.now += 100
    assert cache.get("k0") == _big("row 0")  # the first written is the last used now
    assert cache.get_notes("k0") == ["note 0"]
    clock.now += 10  # a read within a minute of the last one writes nothing
    with sqlite3.connect(path) as db:
        used = db.execute("SELECT used FROM observations WHERE key = 'k0'").fetchone()[0]
    assert cache.get("k0") is not None
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT used FROM observations WHERE key = 'k0'").fetchone()[0] == used
    for i in range(15, 20):
        clock.now += 100
        cache.put(f"k{i}", _big(f"row {i}"), model="visual-tags")
    kept = _keys(path)
    assert "k1" not in kept and "k2" not in kept  # written after k0, but not read since
    assert "k0" in kept and cache.get("k0") == _big("row 0")
    assert cache.get_notes("k0") == ["note 0"]  # notes stay with their observations
    assert _notes_key("k1") not in kept  # and go with them


def test_eviction_shrinks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    unlimited = PerceptionCache(path, max_mb=None)
    for i in range(100):
        unlimited.put(f"k{i}", _big(f"row {i}"))
    unlimited.close()
    before = _disk_size(path)
    assert before > 1024 * 1024
    capped = PerceptionCache(path, max_mb=0.25)
    capped.put("new", _big("new"))
    after = _disk_size(path)
    assert after <= capped.max_bytes < before
    assert capped.get("new") == _big("new") and capped.stats().entries < 25
    capped.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from the start


_OLD_SCHEMA = """
CREATE TABLE observations (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, video_sha256 TEXT NOT NULL,
    created REAL NOT NULL, payload TEXT NOT NULL, checksum TEXT NOT NULL
)
"""


def test_a_database_from_before_the_cap_is_migrated_and_keeps_working(tmp_path: Path) -> None:
    import hashlib
    import json
    from dataclasses import asdict

    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_OLD_SCHEMA)
        for i in range(100):
            payload = json.dumps([asdict(o) for o in _big(f"row {i}")], separators=(",", ":"))
            db.execute(
                "INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?)",
                (f"k{i}", "visual-tags", SHA, 1000.0 + i, payload, hashlib.sha256(payload.encode()).hexdigest()),
            )
    sqlite3.connect(path).close()  # the last connection out checkpoints the log into the file
    before = _disk_size(path)
    assert sqlite3.connect(path).execute("PRAGMA auto_vacuum").fetchone()[0] == 0

    cache = PerceptionCache(path, max_mb=0.25)
    assert cache.get("k5") == _big("row 5")  # old rows still read
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(observations)")}
        used = dict(db.execute("SELECT key, used FROM observations WHERE key IN ('k0', 'k1')").fetchall())
    assert "used" in columns
    assert used == {"k0": 1000.0, "k1": 1001.0}  # old rows count as used when written
    cache.put("new", _big("new"))  # over the cap: the first eviction also converts the file
    kept = _keys(path)
    assert "new" in kept and "k5" in kept and "k0" not in kept and len(kept) < 25
    assert _disk_size(path) < before
    assert cache.get("new") == _big("new")
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    # A second instance (another process) opens the migrated file as it is.
    assert PerceptionCache(path).get("k99") == _big("row 99")


def test_the_cap_comes_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidsense

    assert vidsense.Pipeline(cache_max_mb=5).perceiver.cache.max_bytes == 5 * 2**20
    monkeypatch.setenv("VIDSENSE_CACHE_MAX_MB", "7")
    assert vidsense.Pipeline().perceiver.cache.max_bytes == 7 * 2**20


def _fill_capped(path: str, worker: int, out: "multiprocessing.Queue[str]") -> None:
    try:
        cache = PerceptionCache(Path(path), max_mb=0.3)
        for i in range(40):
            cache.put(f"w{worker}-{i}", _big(f"{worker}-{i}"))
            for key in (f"w{worker}-{i}", f"w{(worker + 1) % 4}-{i}"):
                got = cache.get(key)
                assert got is None or got == _big(key[1:]), key
        out.put("")
    except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying silently
        out.put(repr(exc))


def test_processes_sharing_a_capped_cache_evict_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    results = _in_processes(_fill_capped, path)
    assert results == [""] * 4, results
    assert _db_size(path) <= int(0.3 * 2**20)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
