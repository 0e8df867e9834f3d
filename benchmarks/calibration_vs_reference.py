"""Benchmark: own batched calibration statistics, the statistics cache and `stquant compare` vs the reference.

The reference (../shared/bench/st_style_quantize.py) feeds the TFLite converter's own calibrator one image
per step. Image sets of 120, 600 and 1200 flower photos are built in a temporary folder: the 300 photos of
../shared/assets/datasets/flower_photos and copies of them (600 = 2 copies, 1200 = 4 copies; 120 = the
first 24 of each class). Every command runs as a child process, ours and the reference's alternated, each
case repeated; the table gives medians and ratios (ours / reference). Cases:
- quantize N images: `stquant run --no-cache` (quantization, per-layer report and footprint included) vs
  the reference on the same N images; the marginal cost per image is the least-squares slope of wall time
  over image count, every run of 120/600/1200 counted (less noisy than a difference of two medians).
- cached: after one run has stored the statistics, a second `stquant run` with another granularity
  (per_tensor) and int8 input on the 1200 images vs the reference's full run on them; before each, the int8 models
  kept in the cache are removed (`StatsCache.remove`), so that it quantizes (the kept float graph, with TensorFlow).
  Alternated with it, the re-run: the same run again, its int8 model kept by the run before (TensorFlow not imported).
- compare: `stquant compare --no-cache` of 4 variants (per-channel / per-tensor x uint8 / int8 input) on the
  tutorial split (120 calibration images, 180 held out for agreement) vs one `stquant run` of the same config.
- floors: a process that imports TensorFlow as stquant does, then one that also loads the tutorial .h5 (a run
  converts the Keras model with the converter, which needs both; the second run, whose float graph is kept, needs
  TensorFlow only; the re-run neither), measured between the runs, against the reference.
Peak RSS counts every process of a run (decoding workers included; measure.py).
usage: python benchmarks/calibration_vs_reference.py [--repeat N]
"""

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from measure import measure, ratio_table, repeat_count, stquant_command
from tutorial import CLASSES, FLOOR, MODEL, PHOTOS, REFERENCE, ROOT, TF_ENV, tutorial_config

SIZES = (120, 600, 1200)
CACHED = ("quantization.granularity=per_tensor", "quantization.quantization_input_type=int8", "--progress", "none")


def image_set(folder: Path, size: int) -> Path:
    """`size` flower photos in class folders: the originals and numbered copies (or the first of each class)."""
    root = folder / f"photos_{size}"
    for name in CLASSES:
        photos = sorted((PHOTOS / name).glob("*.jpg"))
        (root / name).mkdir(parents=True)
        if size < len(CLASSES) * len(photos):
            chosen = [(0, p) for p in photos[: size // len(CLASSES)]]
        else:
            chosen = [(copy, p) for copy in range(size // (len(CLASSES) * len(photos))) for p in photos]
        for copy, photo in chosen:
            shutil.copy(photo, root / name / f"{copy}_{photo.name}")
    return root


def main() -> None:
    from engine.quantize.cache import QUANTIZED_FROM, StatsCache

    repeat = repeat_count(MODEL)
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env_cache = folder / "xdg"

        def run(*args: str) -> tuple[float, float]:
            return measure(stquant_command(*args), cwd=ROOT, env={**os.environ, "XDG_CACHE_HOME": str(env_cache)})

        def reference(images: Path) -> tuple[float, float]:
            return measure([sys.executable, str(REFERENCE), str(MODEL), str(images), "1.0", str(folder / "ref.tflite")])

        sets = {size: image_set(folder, size) for size in SIZES}
        references = {}
        floors: dict[str, list[tuple[float, float]]] = {name: [] for name in FLOOR}
        for size in SIZES:
            cfg = tutorial_config(folder, 1.0, sets[size], f"n{size}")
            ours, ref = [], []
            for i in range(repeat):
                ref.append(reference(sets[size]))
                ours.append(
                    run("run", str(cfg), "--progress", "none", "--no-cache", "--output-dir", f"{folder}/o{size}_{i}")
                )
                for name, code in FLOOR.items():  # alternated with the runs, as they are
                    floors[name].append(_floor(code))
            runs += [(size, o[0], r[0]) for o, r in zip(ours, ref)]
            references[size] = ref
            rows.append((f"quantize {size} images", *_medians(ours, ref)))
            _progress(rows[-1])
        cfg = tutorial_config(folder, 1.0, sets[1200], "cached")
        run("run", str(cfg), "--progress", "none", "--output-dir", str(folder / "fill_cache"))
        cache = StatsCache(env_cache / "stquant" / "statistics")
        second, again = [], []
        for i in range(repeat):
            cache.remove(QUANTIZED_FROM)  # this run quantizes
            second.append(run("run", str(cfg), *CACHED, "--output-dir", str(folder / f"cached_{i}")))
            again.append(run("run", str(cfg), *CACHED, "--output-dir", str(folder / f"again_{i}")))
        ref = references[1200]
        rows.append(("second run, statistics cached, 1200 images", *_medians(second, ref)))
        _progress(rows[-1])
        rows.append(("re-run, statistics and int8 model cached, 1200 images", *_medians(again, ref)))
        _progress(rows[-1])
        floor_rows = [(f"{name}, vs 600 images", *_medians(found, references[600])) for name, found in floors.items()]
        floor_rows.append(("floor: + load the .h5, vs 1200 images", *_medians(floors["floor: + load the .h5"], ref)))
        floor_rows.append(
            ("floor: import tensorflow, vs 1200 images", *_medians(floors["floor: import tensorflow"], ref))
        )
        compare_row = _compare_row(folder, repeat, run)
    ours_slope, ref_slope = _slope_ms(runs, 0), _slope_ms(runs, 1)
    print(f"Median of {repeat} alternated runs per case (load average {os.getloadavg()[0]:.1f} at the end).\n")
    print(ratio_table(rows + floor_rows))
    print(
        "\nThe floor rows: a process that imports TensorFlow as stquant does, then loads the tutorial `.h5` (a run "
        "converts the Keras model with the TFLite converter, which needs both; the second run, whose float graph is "
        "kept, needs TensorFlow only to quantize; the re-run, whose int8 model is kept too, imports neither), against "
        "the reference's run on 600 or 1200 images."
    )
    print(
        f"\nMarginal cost per calibration image (least-squares slope of wall time over image count, every run "
        f"counted): {ours_slope:.2f} ms against the reference's {ref_slope:.2f} ms, **{ours_slope / ref_slope:.2f}**."
    )
    print("\n`stquant compare` of 4 variants against one `stquant run` of the same config (120 calibration images):\n")
    print(ratio_table([compare_row], against="one run"))


def _compare_row(folder: Path, repeat: int, run) -> tuple[str, float, float, float, float]:
    """`stquant compare` of 4 variants (granularity x input type) vs one `stquant run` of the same config."""
    tutorial = tutorial_config(folder, 0.4)
    single, many = [], []
    for i in range(repeat):
        single.append(run("run", str(tutorial), "--progress", "none", "--no-cache", "--output-dir", f"{folder}/s{i}"))
        many.append(
            run(
                "compare",
                str(tutorial),
                "--vary",
                "quantization.granularity=per_channel,per_tensor",
                "--vary",
                "quantization.quantization_input_type=uint8,int8",
                "--progress",
                "none",
                "--no-cache",
                "--output-dir",
                str(folder / f"compare_{i}"),
            )
        )
    return ("compare 4 variants", *_medians(many, single))


def _floor(code: str) -> tuple[float, float]:
    return measure([sys.executable, "-c", code], env={**os.environ, **TF_ENV})


def _medians(ours, theirs) -> tuple[float, float, float, float]:
    return _median(ours, 0), _median(theirs, 0), _median(ours, 1), _median(theirs, 1)


def _progress(row) -> None:
    """One finished case on stderr (the section in docs/benchmarks.md gets the final tables only)."""
    print(
        f"{row[0]}: ours {row[1]:.1f} s / {row[3]:.0f} MiB, theirs {row[2]:.1f} s / {row[4]:.0f} MiB", file=sys.stderr
    )


def _slope_ms(runs, k):
    """Milliseconds per extra image: least-squares slope of wall time over image count, every run counted."""
    sizes = [run[0] for run in runs]
    seconds = [run[1 + k] for run in runs]
    return statistics.linear_regression(sizes, seconds).slope * 1000


def _median(runs, k):
    return statistics.median(r[k] for r in runs)


if __name__ == "__main__":
    from docs_tables import section

    with section("calibration_vs_reference"):
        main()
