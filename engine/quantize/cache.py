"""The statistics cache: calibration ranges stored once per model, images, preprocessing and method.

A key is a JSON-able dict (model file hash, the float graph's hash, each calibration file with its size
and mtime, preprocessing, seed, split, method, library versions); its SHA-256 names the entry, a JSON
file in `$XDG_CACHE_HOME/stquant/statistics/` (default `~/.cache/stquant/statistics/`). Entries are
written atomically; a read refreshes the entry's mtime, and the least recently used entries are removed
once the folder exceeds `STQUANT_CACHE_MAX_MB` (default 200). Every entry is checked when read: its
layout (`StoredEntry`), a SHA-256 digest of its content (any edit, truncation or flipped byte is caught),
and, given by the caller, the shape of its value (`TFLITE_STATISTICS`, `ORT_RANGES`: finite bounds, min <= max,
histogram counts that decode to non-negative integers).
An unreadable or bad entry is ignored with one warning and removed: the statistics are then computed again
and stored anew (atomically); an entry of an older format is computed again silently. Each entry also
records how many images the statistics were measured on and how many calibration files could not be
decoded then, so that a run served from the cache reports them.
The TFLite converter's float model of a Keras model is kept the same way (`FLOAT_GRAPH`), so that a run whose
statistics are cached need not load the Keras model, and so is the quantized model the converter made of that float
model (`QUANTIZED_MODEL`, keyed by the float model, the statistics' key and content, every quantization setting, the
libraries' versions and the engine's quantizing code), so that such a run need not import TensorFlow.
`persist=False` keeps entries in memory only (`stquant compare --no-cache`: one statistics pass for all
variants, nothing on disk).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from engine.common.atomic import write_text_atomic
from engine.quantize.histograms import BINS, decode_counts

log = logging.getLogger(__name__)

DEFAULT_MAX_MB = 200
FORMAT = 4  # 3: a digest of the content; 4: TFLite entries hold histograms (`TFLITE_STATISTICS`)
Bound = Annotated[float, Strict(), AllowInfNan(False)]
Derived = TypeVar("Derived")


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError("min > max")
    return pair


class StoredEntry(BaseModel):
    """The layout of an entry file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format: int
    key: dict[str, Any]
    value: Any
    images: int = Field(ge=0)
    skipped: int = Field(ge=0)
    digest: str


class _Values(BaseModel):
    """One bound of an ONNX Runtime tensor range, as its `save_tensors_data` writes a numpy array (ORT adds its own
    fields beside `data`): a list for MinMax, a scalar for 0-d arrays (its histogram calibrators)."""

    model_config = ConfigDict(extra="allow")

    data: Annotated[list[Bound], Field(min_length=1)] | Bound


def _bounds(bound: _Values | float) -> list[float]:
    data = bound.data if isinstance(bound, _Values) else bound
    return data if isinstance(data, list) else [data]


class _OrtTensor(BaseModel):
    model_config = ConfigDict(extra="allow")

    lowest: _Values | Bound  # Percentile writes a plain float for lowest
    highest: _Values | Bound

    @model_validator(mode="after")
    def _ordered(self) -> _OrtTensor:
        low, high = _bounds(self.lowest), _bounds(self.highest)
        if len(low) != len(high) or any(a > b for a, b in zip(low, high)):
            raise ValueError("lowest > highest")
        return self


class _OrtRanges(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: dict[str, _OrtTensor] = Field(min_length=1)


TfliteRanges = dict[
    Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Annotated[tuple[Bound, Bound], AfterValidator(_ordered)]
]
TFLITE_RANGES = TypeAdapter(TfliteRanges)
"""Ranges of the TFLite converter's float model: tensor index -> (min, max)."""


def _counts(packed: str) -> str:
    decode_counts(packed)
    return packed


class _Histogram(BaseModel):
    """One tensor's histogram (`engine.quantize.histograms.Histogram.to_json`)."""

    model_config = ConfigDict(extra="forbid")

    step: Annotated[Bound, Field(ge=0)]
    first: Annotated[int, Strict(), Field(gt=-BINS, le=0)]  # the window holds 0
    counts: Annotated[str, Strict(), AfterValidator(_counts)]


class _TfliteStatistics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bins: Annotated[int, Strict(), Field(ge=BINS, le=BINS)]
    ranges: TfliteRanges
    histograms: dict[str, _Histogram | None] | None  # None: measured without

    @model_validator(mode="after")
    def _same_tensors(self) -> _TfliteStatistics:
        if self.histograms is not None and self.histograms.keys() != self.ranges.keys():
            raise ValueError("histograms and ranges of different tensors")
        return self


TFLITE_STATISTICS = TypeAdapter(_TfliteStatistics)
"""Statistics of the TFLite converter's float model (`engine.quantize.statistics.Statistics.to_json`)."""


def _tflite_base64(text: str) -> str:
    if base64.b64decode(text, validate=True)[4:8] != b"TFL3":  # binascii.Error is a ValueError too
        raise ValueError("not a TFLite flatbuffer")
    return text


class _FloatGraph(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    keras3: bool  # converted from a Keras 3 model (its layer scopes are suffixed)
    tflite: Annotated[str, AfterValidator(_tflite_base64)]  # base64 of the .tflite


FLOAT_GRAPH = TypeAdapter(_FloatGraph)
"""The float .tflite the TFLite converter made of a Keras model, base64 (`engine.quantize.tflite`)."""


class _QuantizedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tflite: Annotated[str, AfterValidator(_tflite_base64)]  # base64 of the .tflite


QUANTIZED_MODEL = TypeAdapter(_QuantizedModel)
"""The .tflite the TFLite converter made of a kept float graph with cached statistics and given settings, base64."""
QUANTIZED_FROM = "quantized_from"  # the key field of a kept quantized model (the hash of its float graph)
ORT_RANGES = TypeAdapter(Json[_OrtRanges])
"""ONNX Runtime's calibration cache, as JSON text (`save_tensors_data`)."""


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


def value_digest(value: Any) -> str:
    """SHA-256 of an entry's value as stored (JSON), the same for the value put and the value read back."""
    return hashlib.sha256(json.dumps(_plain(value), sort_keys=True).encode()).hexdigest()


class StatsCache:
    """Calibration statistics on disk, keyed by everything they depend on."""

    def __init__(self, folder: Path | None = None, max_bytes: int | None = None, persist: bool = True):
        self.folder = Path(folder) if folder else cache_folder()
        megabytes = float(os.environ.get("STQUANT_CACHE_MAX_MB") or DEFAULT_MAX_MB)
        self.max_bytes = max_bytes if max_bytes is not None else int(megabytes * 2**20)
        self.persist = persist
        self._memory: dict[Path, Entry] = {}
        self._derived: dict[tuple[str, str], Any] = {}

    def entry(self, key: dict[str, Any]) -> Path:
        name = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        return self.folder / f"{name}.json"

    def get(self, key: dict[str, Any], shape: TypeAdapter[Any] | None = None) -> Entry | None:
        """The entry stored under `key`, or None (absent, unreadable or bad: a warning, never an error).

        `shape`: what the value must be (else the entry is bad)."""
        path = self.entry(key)
        if not self.persist:
            return self._memory.get(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("statistics cache entry %s unreadable (%s); computing the statistics again", path, exc.strerror)
            return None
        try:
            stored = json.loads(raw)
            if isinstance(stored, dict) and stored.get("format") != FORMAT:
                log.info("statistics cache entry %s has an older format; computing the statistics again", path)
                return None
            entry = StoredEntry.model_validate(stored)
            content = stored.copy()
            del content["digest"]
            if entry.digest != _digest(content) or entry.key != _plain(key):
                raise ValueError("digest or key mismatch")
            if shape is not None:
                shape.validate_python(entry.value)
        except (ValueError, ValidationError, RecursionError):  # JSONDecodeError and ValidationError are ValueErrors
            log.warning("statistics cache entry %s is corrupt; ignored (computing the statistics again)", path)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used* goes first
        return Entry(entry.value, entry.images, entry.skipped)

    def derived(self, key: dict[str, Any], name: str, compute: Callable[[], Derived]) -> Derived:
        """What `compute` derives from the entry under `key` (`name` tells derivations apart): computed once while
        this object lives, kept in memory only (callers must not modify it)."""
        slot = (self.entry(key).name, name)
        if slot not in self._derived:
            self._derived[slot] = compute()
        value: Derived = self._derived[slot]
        return value

    def put(self, key: dict[str, Any], value: Any, images: int, skipped: int) -> None:
        """Store `value` (measured on `images` images; `skipped` files undecodable) under `key`, atomically,
        then evict the least recently used entries over the cap. A cache that cannot be written is a
        warning: the run does not need it."""
        if not self.persist:
            self._memory[self.entry(key)] = Entry(value, images, skipped)
            return
        content = _plain({"format": FORMAT, "key": key, "value": value, "images": images, "skipped": skipped})
        text = json.dumps({**content, "digest": _digest(content)})
        try:
            write_text_atomic(self.entry(key), text)
            self._evict()
        except OSError as exc:
            log.warning("statistics cache %s not written (%s)", self.folder, exc.strerror or exc)

    def remove(self, key_field: str) -> int:
        """Remove the entries on disk whose key has `key_field` (`QUANTIZED_FROM`: the kept quantized models, which a
        benchmark removes to measure a run that converts); how many."""
        removed = 0
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                stored = json.loads(path.read_bytes())
                if isinstance(stored, dict) and isinstance(stored.get("key"), dict) and key_field in stored["key"]:
                    path.unlink()
                    removed += 1
        return removed

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


def _plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples as lists, other objects as their text)."""
    return json.loads(json.dumps(value, default=str))


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
