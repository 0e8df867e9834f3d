"""Activation histograms, collected in the statistics pass, and the range each calibration method derives from them.

One histogram per activation tensor, in bounded memory: `BINS` counts of bins of width `step` on a grid
anchored at 0 (grid bin k holds [k*step, (k+1)*step)); the counts are a window of `BINS` consecutive grid
bins that always contains 0. The first batch with a non-zero value sets the width so that its range fills
the window; when a later batch falls outside it, the width doubles as many times as needed (pairs of bins
merged, exactly: a bin of the finer grid lies in one bin of the coarser) and the window slides.

Each method's range (`method_range`) is clipped to the tensor's exact min/max, as ONNX Runtime clips its
thresholds; percentile and mse thresholds come from the histogram of |x| (the grid folded at 0):
- `minmax`: the exact min/max.
- `percentile`: ONNX Runtime's default Percentile calibration (symmetric, `PERCENTILE`): a = the lower edge
  of the |x| bin where the cumulative count reaches the percentile (as ONNX Runtime and TensorRT take it);
  range [-a, a].
- `entropy`: ONNX Runtime's EntropyCalibrater (TensorRT's KL-divergence calibration as ONNX Runtime implements
  it, `_entropy_range`): on the histogram made symmetric about 0, for each candidate window of 2i + 1 bins around 0
  (i from 64 on), the window (outliers added to its end bins) against the same merged into 128 levels and spread
  back; the first window of least divergence. The exact zeros of a ReLU are left out first (0's bin cut down to
  its fuller neighbour's count, `without_zero_spike`): every range holds 0 exactly (the zero point), so they lose
  nothing, but spread over the bins of 0's level they weigh more than any clipping, and a layer that is mostly
  zeros was clipped to its narrowest window. ONNX Runtime does not meet this: its 128 bins from the first batch
  leave few windows to choose from. (TensorRT's own variant, on |x| with its zero bin ignored, clips ReLU6
  MobileNets far too hard: a spike of equal values inside the range wins.)
- `mse`: the a whose int8 range reproduces the values with the least squared error: each candidate (the |x| bin
  edges from `START_BIN` on, as TensorRT's `_compute_amax_mse`, and max |x|) gives the range [-a, a] clipped to
  the min/max, which is quantized as the TFLite converter and ONNX Runtime quantize activations (asymmetric
  int8, the range widened to hold 0, zero point rounded); the error is integrated exactly over each bin, its
  count spread evenly over it (TensorRT quantizes the bin centres instead, which aliases when a bin is about
  as wide as an int8 step).
"""

from __future__ import annotations

import base64
import math
import zlib
from typing import Any

import numpy as np

BINS = 2048
PERCENTILE = 99.999  # ONNX Runtime's default
START_BIN = 128  # TensorRT's first candidate threshold (in |x| bins)
LEVELS = 128  # ONNX Runtime's num_quantized_bins
SMOOTHING = 1e-4  # ONNX Runtime's smooth_distribution eps
METHODS = ("minmax", "percentile", "entropy", "mse")
COARSE = 16  # mse: every COARSE-th candidate, then all of them around the best (memory: candidates/COARSE x BINS)


class Histogram:
    """Counts of one tensor's values (NaN excluded) on a grid of width `step` whose bin `first` is `counts[0]`.

    `step` is 0 while every value seen is 0 (then all are counted in `counts[0]`); `usable` is False once a
    value was infinite (the range is then the min/max)."""

    def __init__(self, counts: np.ndarray | None = None, step: float = 0.0, first: int = 0, usable: bool = True):
        self.counts = np.zeros(BINS, np.int64) if counts is None else counts
        self.step, self.first, self.usable = step, first, usable

    def add(self, values: np.ndarray, low: float, high: float) -> None:
        """Count `values` (no NaN), whose min and max are `low` and `high`."""
        if not self.usable:
            return
        if not (math.isfinite(low) and math.isfinite(high)):
            self.usable = False
            return
        if self.step == 0.0:
            if low == high == 0.0:
                self.counts[0] += values.size
                return
            self._start(low, high)
        self._cover(low, high)
        position = values * np.float32(1.0 / self.step)  # float32: bins are far wider than its rounding
        position -= np.float32(self.first)
        np.clip(position, 0, BINS - 1, out=position)  # the window holds every value; only rounding clips
        self.counts += np.bincount(position.astype(np.int16), minlength=BINS)  # >= 0: truncation is floor

    def _start(self, low: float, high: float) -> None:
        """Set the width from the first batch with a non-zero value; the zeros seen before go to 0's bin."""
        zeros = int(self.counts[0])
        self.step = (max(high, 0.0) - min(low, 0.0)) / (BINS - 4)
        self.first = math.floor(min(low, 0.0) / self.step) - 1
        self.counts[:] = 0
        self.counts[-self.first] = zeros

    def _cover(self, low: float, high: float) -> None:
        """Widen the bins (doubling their width) and slide the window until it holds [low, high], 0 and the
        bins counted so far, with one spare bin at each end (float rounding at the edges)."""
        occupied = np.flatnonzero(self.counts)
        bottom = min(low, 0.0, (self.first + int(occupied[0])) * self.step if occupied.size else 0.0)
        top = max(high, 0.0, (self.first + int(occupied[-1]) + 1) * self.step if occupied.size else 0.0)
        doublings = 0
        while True:
            width = self.step * 2**doublings
            start, end = math.floor(bottom / width) - 1, math.floor(top / width) + 1
            if end - start < BINS:
                break
            doublings += 1
        if doublings == 0 and start >= self.first and end < self.first + BINS:
            return
        coarse = ((self.first + occupied) >> doublings) - start  # arithmetic shift: floor division
        self.counts = np.bincount(coarse, weights=self.counts[occupied], minlength=BINS).astype(np.int64)
        self.step, self.first = self.step * 2**doublings, start

    def to_json(self) -> dict[str, Any] | None:
        """JSON-able form (counts: base64 of zlib of little-endian int64); None when not usable."""
        if not self.usable:
            return None
        packed = base64.b64encode(zlib.compress(self.counts.astype("<i8").tobytes())).decode()
        return {"step": self.step, "first": self.first, "counts": packed}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> Histogram:
        """The histogram `to_json` gave (`stored` already checked by `decode_counts`)."""
        if stored is None:
            return cls(usable=False)
        return cls(decode_counts(stored["counts"]), float(stored["step"]), int(stored["first"]))


def decode_counts(packed: str) -> np.ndarray:
    """The counts of `Histogram.to_json`; ValueError unless they are `BINS` non-negative integers."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(packed, validate=True), BINS * 8 + 1)
    except (ValueError, zlib.error) as error:  # binascii.Error is a ValueError
        raise ValueError("counts: not base64 of zlib data") from error
    if len(raw) != BINS * 8 or not inflater.eof:
        raise ValueError(f"counts: not {BINS} int64 values")
    counts = np.frombuffer(raw, "<i8").astype(np.int64)
    if counts.min() < 0:
        raise ValueError("counts: negative")
    return counts


def method_range(histogram: Histogram, low: float, high: float, method: str) -> tuple[float, float]:
    """The range `method` gives a tensor of min `low` and max `high` (see the module docstring)."""
    if method == "minmax" or not histogram.usable or histogram.step == 0.0:
        return low, high
    if method == "percentile":
        threshold = _percentile_threshold(_magnitudes(histogram)) * histogram.step
    elif method == "entropy":
        bottom, top = _entropy_range(histogram)
        bottom = max(low, bottom)
        return bottom, max(min(high, top), bottom)
    elif method == "mse":
        threshold = _mse_threshold(histogram, low, high)
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    return clipped(low, high, threshold)


def clipped(low: float, high: float, threshold: float) -> tuple[float, float]:
    """[-threshold, threshold] within [low, high] (a single point when they do not meet)."""
    bottom = max(low, -threshold)
    return bottom, max(min(high, threshold), bottom)


def _magnitudes(histogram: Histogram) -> np.ndarray:
    """Counts of |x| in the bins [j*step, (j+1)*step), j = 0, 1, ... (grid bin -j-1 folds onto bin j)."""
    grid = histogram.first + np.arange(BINS)
    folded = np.where(grid >= 0, grid, -grid - 1)
    return np.bincount(folded, weights=histogram.counts).astype(np.int64)


def _percentile_threshold(magnitudes: np.ndarray) -> int:
    cumulative = np.cumsum(magnitudes / magnitudes.sum())
    return int(np.searchsorted(cumulative, PERCENTILE / 100.0))


def _entropy_range(histogram: Histogram) -> tuple[float, float]:
    """The range of the first candidate of least divergence (`entropy_divergences`) without the zero spike."""
    divergences, bottoms, tops = entropy_divergences(without_zero_spike(histogram))
    best = int(np.argmin(divergences))
    return float(bottoms[best]), float(tops[best])


def without_zero_spike(histogram: Histogram) -> Histogram:
    """The histogram with 0's bin cut down to the count of its fuller neighbour (the window always holds 0's bin)."""
    counts, zero = histogram.counts.copy(), -histogram.first
    below = counts[zero - 1] if zero > 0 else 0
    above = counts[zero + 1] if zero + 1 < BINS else 0
    counts[zero] = min(counts[zero], max(below, above))
    return Histogram(counts, histogram.step, histogram.first)


def entropy_divergences(histogram: Histogram) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX Runtime's KL divergences (`HistogramCollector.get_entropy_threshold`, `LEVELS` levels) and the ranges
    they are of, on the histogram made symmetric about 0, for every candidate at once from prefix sums; equal to
    ORT's own up to float rounding (it computes them in float32, so near-ties may pick another candidate).

    Its candidate i keeps the 2i + 1 bins around 0's bin (the outliers added to the first and last), merges them
    into `LEVELS` levels of m = (2i + 1) // LEVELS bins (the bins beyond LEVELS * m also go to the last level's
    count, their own q staying 0), q of every bin of a level = its count // its non-empty bins, smooths p and q
    (`SMOOTHING` moved onto their empty bins) and takes the first i of least KL(p || q). Per level instead of per
    bin: sum p' log p' (first order in the smoothing shift, eps * empty / non-empty bins, small against a count)
    minus sum over levels of (p' of the level) * log q' of its bins, normalised by the totals."""
    half = max(histogram.first + BINS, -histogram.first)
    counts = np.zeros(2 * half)
    counts[histogram.first + half : histogram.first + half + BINS] = histogram.counts
    size, rows = counts.size, np.arange(half - LEVELS // 2 + 1)
    mass, empty = _prefix(counts), _prefix(counts == 0)
    filled = counts > 0
    log_counts = np.where(filled, np.log(np.where(filled, counts, 1.0)), 0.0)
    entropy, logs = _prefix(counts * log_counts), _prefix(log_counts)
    kept = np.arange(LEVELS // 2, half + 1)
    start, end = half - kept, np.minimum(half + kept + 1, size)
    width = end - start
    merged = width // LEVELS
    covered = start + LEVELS * merged  # bins [covered, end): counted in the last level, their q is 0
    left, right = mass[start], mass[size] - mass[end]
    first_p, last_p = counts[start] + left, counts[end - 1] + right
    fix_first = (first_p > 0).astype(int) - (counts[start] > 0)
    fix_last = (last_p > 0).astype(int) - (counts[end - 1] > 0)
    last_in_levels = end - 1 < covered
    bounds = start[:, None] + np.arange(LEVELS + 1)[None, :] * merged[:, None]
    level_mass = np.diff(mass[bounds], axis=1)
    quantized = level_mass.copy()
    quantized[:, -1] += mass[end] - mass[covered]
    nonempty = merged[:, None] - np.diff(empty[bounds], axis=1)  # non-empty bins of p in each level
    nonempty[:, 0] += fix_first
    nonempty[rows, -1] += np.where(last_in_levels, fix_last, 0)
    q_level = np.where(nonempty > 0, np.floor(quantized / np.maximum(nonempty, 1)), 0.0)  # ORT's int64 q
    p_filled = width - (empty[end] - empty[start]) + fix_first + fix_last
    q_filled = np.sum((q_level > 0) * merged[:, None], axis=1)
    usable = (p_filled > 0) & (q_filled > 0)
    p_shift = SMOOTHING * (width - p_filled) / np.maximum(p_filled, 1)
    q_shift = SMOOTHING * (width - q_filled) / np.maximum(q_filled, 1)
    smoothed_zero = SMOOTHING * math.log(SMOOTHING)
    # sum of p' log p': the inner bins (counts as they are), then the first and last bins (outliers added)
    inner_filled = (width - 2) - (empty[end - 1] - empty[start + 1])
    p_log_p = (
        entropy[end - 1]
        - entropy[start + 1]
        - p_shift * (logs[end - 1] - logs[start + 1] + inner_filled)
        + (width - 2 - inner_filled) * smoothed_zero
        + _smoothed_log(first_p, p_shift, smoothed_zero)
        + _smoothed_log(last_p, p_shift, smoothed_zero)
    )
    # sum of p' log q': per level (every bin of a level has the same q'), then the bins beyond the levels (q' = eps)
    level_p = level_mass + SMOOTHING * (merged[:, None] - nonempty) - p_shift[:, None] * nonempty
    level_p[:, 0] += left
    level_p[rows, -1] += np.where(last_in_levels, right, 0.0)
    log_q = np.log(np.where(q_level > 0, q_level - q_shift[:, None], SMOOTHING))
    tail_filled = (end - covered) - (empty[end] - empty[covered]) + np.where(last_in_levels, 0, fix_last)
    tail_p = (
        mass[end]
        - mass[covered]
        + np.where(last_in_levels, 0.0, right)
        + SMOOTHING * (end - covered - tail_filled)
        - p_shift * tail_filled
    )
    p_log_q = np.sum(level_p * log_q, axis=1) + tail_p * math.log(SMOOTHING)
    total, q_total = mass[size], np.sum(q_level * merged[:, None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        divergences = (p_log_p - p_log_q) / total - math.log(total) + np.log(q_total)
    divergences = np.where(usable, divergences, np.inf).astype(np.float32)  # ORT keeps them as float32
    return divergences, (start - half) * histogram.step, (end - half) * histogram.step


def _prefix(values: np.ndarray) -> np.ndarray:
    """prefix[i] = sum(values[:i])."""
    return np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])


def _smoothed_log(count: np.ndarray, shift: np.ndarray, smoothed_zero: float) -> np.ndarray:
    """(count - shift) log(count - shift) for a non-empty bin, eps log eps for an empty one."""
    safe = np.where(count > 0, count - shift, 1.0)
    return np.where(count > 0, safe * np.log(safe), smoothed_zero)


def _mse_threshold(histogram: Histogram, low: float, high: float) -> float:
    """The candidate threshold of least int8 quantization error over the histogram's bins: every `COARSE`-th
    candidate first, then every candidate around the best of those (the error is smooth in the threshold)."""
    step = histogram.step
    filled = np.flatnonzero(histogram.counts)
    bottoms = (histogram.first + filled) * step
    weights = histogram.counts[filled].astype(np.float64)
    largest = max(abs(low), abs(high))
    edges = np.arange(START_BIN, math.ceil(largest / step) + 1) * step
    candidates = np.append(edges[edges < largest], largest)

    def best(chosen: np.ndarray) -> int:
        errors = quantization_error(bottoms, step, weights, low, high, candidates[chosen])
        return int(chosen[int(np.argmin(errors))])

    coarse = best(np.unique(np.append(np.arange(0, candidates.size, COARSE), candidates.size - 1)))
    return float(candidates[best(np.arange(max(coarse - COARSE, 0), min(coarse + COARSE + 1, candidates.size)))])


def quantization_error(
    bottoms: np.ndarray, width: float, weights: np.ndarray, low: float, high: float, thresholds: np.ndarray
) -> np.ndarray:
    """For each threshold, the squared error of int8 quantization over its range [-threshold, threshold] within
    [low, high] (asymmetric, widened to hold 0, zero point rounded: the TFLite converter's and ONNX Runtime's
    activations) of the bins [bottoms, bottoms + width), each holding `weights` values spread evenly over it:
    exact integrals of the rounding error inside the int8 grid and of the clipping error beyond its ends."""
    bottom = np.maximum(low, -thresholds)
    top = np.maximum(np.minimum(high, thresholds), bottom)
    bottom, top = np.minimum(bottom, 0.0), np.maximum(top, 0.0)
    scale = np.where(top > bottom, (top - bottom) / 255.0, 1.0)[:, None]
    zero = np.clip(np.round(-128.0 - bottom[:, None] / scale), -128, 127)
    first, last = (-128.0 - zero) * scale, (127.0 - zero) * scale  # the grid's ends: levels are multiples of scale
    start, end = bottoms[None, :], bottoms[None, :] + width
    below = (np.minimum(end, first) - first) ** 3 - (np.minimum(start, first) - first) ** 3
    above = (np.maximum(end, last) - last) ** 3 - (np.maximum(start, last) - last) ** 3
    inside = scale**3 * (
        _rounding_integral(np.clip(end, first, last) / scale) - _rounding_integral(np.clip(start, first, last) / scale)
    )
    error: np.ndarray = np.sum(weights[None, :] * ((below + above) / 3 + inside), axis=1) / width
    return error


def _rounding_integral(y: np.ndarray) -> np.ndarray:
    """The integral from -1/2 to y of (t - round(t))^2 dt: 1/12 per whole unit, (r^3 + 1/8) / 3 for the rest."""
    nearest = np.floor(y + 0.5)
    rest: np.ndarray = nearest / 12 + ((y - nearest) ** 3 + 0.125) / 3
    return rest
