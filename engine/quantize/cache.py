"""The statistics cache: calibration ranges stored once per model, images, preprocessing and method.

A key is a JSON-able dict (model file hash, the float graph's hash, each calibration file with its size
and mtime, preprocessing, seed, split, method, library versions); its SHA-256 names the entry, a JSON
file in `$XDG_CACHE_HOME/stquant/statistics/` (default `~/.cache/stquant/statistics/`). Entries are
written atomically; a read refreshes the entry's mtime, and the least recently used entries are removed
once the folder exceeds `STQUANT_CACHE_MAX_MB` (default 200). An unreadable or corrupt entry is ignored
with a warning (and removed): the statistics are then computed again; an entry of an older format is
computed again silently. Each entry also records how many images the statistics were measured on and how
many calibration files could not be decoded then, so that a run served from the cache reports them.
`persist=False` keeps entries in memory only (`stquant compare --no-cache`: one statistics pass for all
variants, nothing on disk).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_MAX_MB = 200
FORMAT = 2


@dataclass(frozen=True)
class Entry:
    """Stored statistics, and the images they were measured on."""

    value: Any
    images: int
    skipped: int


def cache_folder() -> Path:
    """`$XDG_CACHE_HOME/stquant/statistics`, else `~/.cache/stquant/statistics`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stquant" / "statistics"


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StatsCache:
    """Calibration statistics on disk, keyed by everything they depend on."""

    def __init__(self, folder: Path | None = None, max_bytes: int | None = None, persist: bool = True):
        self.folder = Path(folder) if folder else cache_folder()
        megabytes = float(os.environ.get("STQUANT_CACHE_MAX_MB") or DEFAULT_MAX_MB)
        self.max_bytes = max_bytes if max_bytes is not None else int(megabytes * 2**20)
        self.persist = persist
        self._memory: dict[Path, Entry] = {}

    def entry(self, key: dict) -> Path:
        name = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        return self.folder / f"{name}.json"

    def get(self, key: dict) -> Entry | None:
        """The entry stored under `key`, or None (absent, unreadable or corrupt: a warning, never an error)."""
        path = self.entry(key)
        if not self.persist:
            return self._memory.get(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("statistics cache entry %s unreadable (%s); computing the statistics again", path, exc.strerror)
            return None
        try:
            stored = json.loads(text)
            if stored["format"] != FORMAT:
                log.info("statistics cache entry %s has an older format; computing the statistics again", path)
                return None
            if stored["key"] != json.loads(json.dumps(key, default=str)):
                raise ValueError("key mismatch")
            entry = Entry(stored["value"], int(stored["images"]), int(stored["skipped"]))
        except (ValueError, KeyError, TypeError):
            log.warning("statistics cache entry %s is corrupt; ignored (computing the statistics again)", path)
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # least recently *used* goes first
        except OSError:
            pass
        return entry

    def put(self, key: dict, value: Any, images: int, skipped: int) -> None:
        """Store `value` (measured on `images` images; `skipped` files undecodable) under `key`, atomically,
        then evict the least recently used entries over the cap. A cache that cannot be written is a
        warning: the run does not need it."""
        if not self.persist:
            self._memory[self.entry(key)] = Entry(value, images, skipped)
            return
        text = json.dumps({"format": FORMAT, "key": key, "value": value, "images": images, "skipped": skipped},
                          default=str)
        try:
            write_text_atomic(self.entry(key), text)
            self._evict()
        except OSError as exc:
            log.warning("statistics cache %s not written (%s)", self.folder, exc.strerror or exc)

    def _evict(self) -> None:
        entries = []
        for path in self.folder.glob("*.json"):
            try:
                info = path.stat()
            except FileNotFoundError:  # another run evicted it
                continue
            entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
