"""The perception cache: one SQLite file of observations, shared by processes.

A perception model's output for a video depends only on the video's bytes, the
model (name, version, weights) and its parameters, and the windows asked for;
:func:`cache_key` hashes exactly that, so a second run of the same video costs
no model call. The store is stdlib ``sqlite3`` in WAL mode with a busy timeout,
so concurrent processes (CLI runs, dashboard workers) can read and write the
same file. Each row carries the SHA-256 of its payload: a row damaged on disk
is detected, deleted, logged and reported as a miss, so it is recomputed.
The file is capped (``cache_max_mb``): past the cap the least recently used
rows are deleted and the freed pages handed back to the file system.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from vidsense.services.errors import ProcessingError
from vidsense.services.media.video import FRAME_PICKING
from vidsense.services.perception import ModelCard
from vidsense.services.timeline import Observation, Window

log = logging.getLogger(__name__)

# Bump when the key recipe or the payload layout changes: old rows then never match.
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
# Switching a fresh file to WAL takes a lock the busy timeout does not wait for: processes
# opening one cache at once retry this many times, backing off from this many seconds.
LOCKED_RETRIES = 6
LOCKED_BACKOFF_S = 0.05
# The cap of a cache built without settings: the default of Settings.cache_max_mb (which says why).
DEFAULT_MAX_MB = 2048.0
# Past the cap, rows go until the data fits in this share of it, so the next puts do not evict again at once.
EVICT_TO = 0.9
# A read refreshes a row's last-used time only when it is older than this: no write for every read.
TOUCH_AFTER_S = 60.0
# Bytes a row costs beyond its payload (key, hashes, b-tree cells), for choosing how many rows to evict.
ROW_OVERHEAD = 200

# Rows of video probes share the table; the version expires them when VideoInfo changes.
PROBE_MODEL = "probe"
PROBE_VERSION = 1


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _info_key(video_sha256: str) -> str:
    return hashlib.sha256(f"{PROBE_MODEL}|{PROBE_VERSION}|{SCHEMA_VERSION}|{video_sha256}".encode()).hexdigest()


def _notes_key(key: str) -> str:
    return hashlib.sha256(f"notes|{key}".encode()).hexdigest()


def _bad(data: Any) -> Any:
    raise ValueError(f"expected an object, got {type(data).__name__}")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    video_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    payload TEXT NOT NULL,
    checksum TEXT NOT NULL,
    used REAL NOT NULL DEFAULT 0
)
"""
_USED_INDEX = "CREATE INDEX IF NOT EXISTS observations_used ON observations (used)"


def _add_used_column(conn: sqlite3.Connection) -> None:
    """Give a file from before the cap its last-used column; its rows count as used when written."""
    if any(row[1] == "used" for row in conn.execute("PRAGMA table_info(observations)")):
        return
    with conn:  # an immediate transaction: of processes opening the old file at once, one migrates
        conn.execute("BEGIN IMMEDIATE")
        if not any(row[1] == "used" for row in conn.execute("PRAGMA table_info(observations)")):
            conn.execute("ALTER TABLE observations ADD COLUMN used REAL NOT NULL DEFAULT 0")
            conn.execute("UPDATE observations SET used = created")


def _db_bytes(conn: sqlite3.Connection) -> int:
    """Size of the database as of its last commit (pages still in the write-ahead log count), free pages included."""
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]


def _canonical(value: Any) -> str:
    # sort_keys makes dict order irrelevant; default=str covers Paths and the like.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(
    video_sha256: str,
    card: ModelCard,
    params: dict,
    windows: tuple[Window, ...],
    extra: dict | None = None,
) -> str:
    """The cache key of one model's observations of one video.

    Args:
        video_sha256: SHA-256 of the video file's bytes.
        card: the model's card (name and version are part of the key).
        params: the model's :meth:`params` (weights hash, thresholds, ...).
        windows: the windows described; different cuts never share a row.
        extra: anything else the caller's output depends on (e.g. frames per window).

    Returns:
        A hex SHA-256 digest.
    """
    recipe = {
        "schema": SCHEMA_VERSION,
        "frames": FRAME_PICKING,
        "video": video_sha256,
        "model": {"name": card.name, "version": card.version, "modalities": list(card.modalities)},
        "params": params,
        "windows": [[w.index, w.start_s, w.end_s] for w in windows],
        "extra": extra or {},
    }
    return hashlib.sha256(_canonical(recipe).encode()).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """What ``vidsense cache stats`` shows.

    Attributes:
        path: the SQLite file.
        entries: number of cached results (one per model and video and settings).
        bytes: size on disk of the database and its write-ahead log.
        max_bytes: the cap past which least recently used rows are evicted (0: none).
        per_model: entries per model name.
        hits / misses: lookups answered / not answered by this process.
    """

    path: str
    entries: int
    bytes: int
    max_bytes: int = 0
    per_model: dict[str, int] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# Process-wide lookup counters per database file, so every PerceptionCache
# instance on the same file reports the same hits and misses.
_COUNTERS: dict[str, list[int]] = {}
_COUNTERS_LOCK = threading.Lock()


class PerceptionCache:
    """Observations by :func:`cache_key`, in one SQLite file of at most ``max_mb`` (None: no cap)."""

    def __init__(self, path: Path, max_mb: float | None = DEFAULT_MAX_MB) -> None:
        """Open (create) the cache at ``path``; the connection opens on first use."""
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024) if max_mb else 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with _COUNTERS_LOCK:
            self._counts = _COUNTERS.setdefault(str(self.path.resolve()), [0, 0])

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], max_mb: float | None = DEFAULT_MAX_MB) -> "PerceptionCache":
        """The cache of a vidsense home: ``home / "cache" / "perception.sqlite"``."""
        return cls(Path(home) / "cache" / "perception.sqlite", max_mb)

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross fork(): reopen in a child process.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A file that is locked or damaged fails here or at the first query alike; _run handles both.
        self._conn, self._pid = self._open(), os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # Takes effect only on a file without tables (an older file converts at its first eviction's
            # VACUUM): evicted rows' pages can then be handed back to the file system a few at a time.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses at most the last commits on power loss, never consistency;
            # a lost cache row is only recomputed.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            _add_used_column(conn)
            conn.execute(_USED_INDEX)
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_damaged_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Move a file that is not a usable database aside; the next connection starts an empty cache.

        The cache holds nothing that cannot be recomputed, so a damaged file must
        not stop the product; it is kept (renamed) for inspection.
        """
        self._drop_connection()
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.time_ns()}")
        log.warning("%s: not a usable SQLite database (%s); moved to %s, starting an empty cache", self.path, exc, aside)
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work(connection)`` under the lock, surviving what a shared cache file meets.

        Damage found below the header (SQLite reads pages lazily, so a file that
        opened fine can still say "database disk image is malformed") moves the
        file aside and the work runs again on an empty cache. A database locked
        by other processes past the busy timeout is retried with back-off.
        """
        locked, rebuilt = 0, False
        with self._lock:
            while True:
                try:
                    return work(self._connect())
                except sqlite3.OperationalError as exc:
                    if locked == LOCKED_RETRIES or not _is_locked(exc):
                        raise ProcessingError(f"{self.path}: perception cache failed ({exc})") from exc
                    log.info("perception cache %s: %s; retrying", self.path, exc)
                    time.sleep(LOCKED_BACKOFF_S * 2**locked)
                    locked += 1
                except sqlite3.DatabaseError as exc:
                    if rebuilt:  # a fresh file that is damaged too: something else is wrong
                        raise ProcessingError(f"{self.path}: perception cache failed ({exc})") from exc
                    self._move_damaged_aside(exc)
                    rebuilt = True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._run(lambda conn: conn.execute(sql, args).fetchall())

    def _count(self, hit: bool) -> None:
        with _COUNTERS_LOCK:
            self._counts[0 if hit else 1] += 1

    def get(self, key: str) -> list[Observation] | None:
        """The observations stored under ``key``; None on a miss or a damaged row.

        A damaged row (checksum mismatch, unreadable JSON, fields that no longer
        make an :class:`Observation`) is deleted and logged, then counts as a miss.
        """
        return self._load(key, lambda data: [Observation(**o) for o in data], count=True)

    def put(self, key: str, observations: list[Observation], *, model: str = "", video_sha256: str = "") -> None:
        """Store ``observations`` under ``key`` (replacing any previous row).

        Args:
            key: from :func:`cache_key`.
            observations: may be empty: "this model saw nothing" is a result worth keeping.
            model: model name, for :meth:`stats`.
            video_sha256: the video's hash, for inspection.
        """
        self._store(key, [asdict(o) for o in observations], model, video_sha256)

    def get_info(self, video_sha256: str) -> dict[str, Any] | None:
        """The stored probe of a video (its :class:`VideoInfo` fields), or None.

        Probing reads the end of the file to detect truncation, which was most of
        a cached re-run's time; the result depends only on the bytes.
        """
        return self._load(_info_key(video_sha256), lambda data: data if isinstance(data, dict) else _bad(data))

    def put_info(self, video_sha256: str, info: dict[str, Any]) -> None:
        """Store a video's probe (see :meth:`get_info`)."""
        self._store(_info_key(video_sha256), info, PROBE_MODEL, video_sha256)

    def get_notes(self, key: str) -> list[str] | None:
        """Notes a model left with the observations stored under ``key`` (e.g. the speech language)."""
        return self._load(_notes_key(key), lambda data: [str(n) for n in data] if isinstance(data, list) else _bad(data))

    def put_notes(self, key: str, notes: list[str], *, model: str = "", video_sha256: str = "") -> None:
        """Store a model's notes next to its observations (see :meth:`get_notes`)."""
        self._store(_notes_key(key), list(notes), f"{model}:notes" if model else "notes", video_sha256)

    def _load(self, key: str, parse: Any, count: bool = False) -> Any:
        """The parsed payload under ``key`` (None: a miss or a damaged row, which is deleted).

        Only observation lookups (``count``) go into the hit/miss counters, so a
        fully cached run reports no misses for the probe and notes rows beside them.
        """
        rows = self._rows("SELECT payload, checksum, model, used FROM observations WHERE key = ?", (key,))
        if not rows:
            if count:
                self._count(hit=False)
            return None
        payload, checksum, model, used = rows[0]
        try:
            if hashlib.sha256(payload.encode()).hexdigest() != checksum:
                raise ValueError("checksum mismatch")
            value = parse(json.loads(payload))
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("perception cache %s: damaged row for %s (%s); deleting it", self.path, model or key[:12], exc)
            self._run(lambda conn: conn.execute("DELETE FROM observations WHERE key = ?", (key,)))
            if count:
                self._count(hit=False)
            return None
        if count:
            self._count(hit=True)
        now = time.time()
        if now - used > TOUCH_AFTER_S:
            # The notes stored beside observations are used with them: both stay or go together.
            self._run(lambda conn: conn.execute("UPDATE observations SET used = ? WHERE key IN (?, ?)", (now, key, _notes_key(key))))
        return value

    def _store(self, key: str, data: Any, model: str, video_sha256: str) -> None:
        payload = json.dumps(data, separators=(",", ":"))
        checksum = hashlib.sha256(payload.encode()).hexdigest()

        def store(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT OR REPLACE INTO observations (key, model, video_sha256, created, payload, checksum, used) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, model, video_sha256, now, payload, checksum, now),
            )
            if self.max_bytes and _db_bytes(conn) + self._wal_bytes() > self.max_bytes:
                self._evict(conn)

        self._run(store)

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Delete least recently used rows until the data fits in ``EVICT_TO`` of the cap, then shrink the files.

        The write-ahead log counts towards the cap too: it is emptied into the database and truncated.
        """
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        excess = _db_bytes(conn) - free - int(self.max_bytes * EVICT_TO)
        victims: list[str] = []
        rows = conn.execute("SELECT key, LENGTH(payload) FROM observations ORDER BY used")
        for key, size in rows:
            if excess <= 0:
                break
            victims.append(key)
            excess -= size + ROW_OVERHEAD
        rows.close()  # an unfinished statement would stop the VACUUM below
        if victims:
            with conn:  # one transaction: a thousand single-row commits would each sync the log
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("DELETE FROM observations WHERE key IN (?, ?)", [(k, _notes_key(k)) for k in victims])
            log.info("perception cache %s: over its cap of %.0f MB; evicted %d least recently used row(s)", self.path, self.max_bytes / 2**20, len(victims))
        try:
            if conn.execute("PRAGMA freelist_count").fetchone()[0]:
                if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                    # execute() would free one page: it steps a statement that returns no rows only once.
                    conn.executescript("PRAGMA incremental_vacuum")
                else:  # a file made before the cap: VACUUM also switches it to incremental (set in _open)
                    conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            # Another process is reading: the freed pages are reused by later writes instead.
            log.info("perception cache %s: not compacted (%s)", self.path, exc)

    def stats(self) -> CacheStats:
        """Entries, size on disk, entries per model and this process's hits and misses."""
        per_model = {m or "(unnamed)": n for m, n in self._rows("SELECT model, COUNT(*) FROM observations GROUP BY model ORDER BY model")}
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        with _COUNTERS_LOCK:
            hits, misses = self._counts
        return CacheStats(
            path=str(self.path),
            entries=sum(per_model.values()),
            bytes=size,
            max_bytes=self.max_bytes,
            per_model=per_model,
            hits=hits,
            misses=misses,
        )

    def clear(self) -> int:
        """Remove every cached result; returns how many rows were removed.

        The file is then compacted when no other process is using it; when one
        is, the space is reused by later writes instead.
        """
        def clear(conn: sqlite3.Connection) -> int:
            removed = conn.execute("DELETE FROM observations").rowcount
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                log.info("perception cache %s: not compacted (%s)", self.path, exc)
            return removed

        # A damaged file is moved aside by _run, so clearing always ends with an empty cache.
        return self._run(clear)

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
