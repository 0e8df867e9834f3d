"""Benchmark: the evaluation stages of `stquant run` chain_eqe vs the reference's evaluation algorithm.

Data: the 300 shared flower photos repeated four times (1200 images, symlinks in class folders).
Reference (../shared/bench/st_style_evaluate.py): tf.data decode per model, Keras evaluate plus a second
predict pass, one TFLite invoke per image, on the tutorial .h5 and ST's int8 .tflite.
Ours: `stquant run` chain_eqe on the same .h5 and images (decode once, shared; batched inference), with the
user's statistics cache, which holds the statistics and the converter's float graph once the script has run on
the machine. Each round runs it twice: once the cache's kept int8 models are removed (through the cache's own
`StatsCache.remove`), so that the converter quantizes the kept float graph (TensorFlow imported beside the float
evaluation), then again, its int8 model kept by that run (nothing converted, TensorFlow not imported).
Rows 1 and 2, the evaluation stages of each: the run's wall time minus its quantization stages (`calibration` and
`layer_errors` in run_summary.json `timings`), i.e. process start, model loading, decoding and both
evaluations. The float model is evaluated on the float32 graph the TFLite converter builds (kept in the cache).
Row 3, the whole chain: the run that converts vs the reference's quantization (st_style_quantize.py,
same split) plus its evaluation, as the reference's chain_eqe does both.
MLflow logging is off on both sides. Alternated runs, medians, ratios.
The floor rows: what a chain_eqe run of a Keras model pays before any image is seen when its quantization converts
the Keras model (no float graph in the statistics cache), which needs TensorFlow and that model: a Python process that imports TensorFlow as stquant
does (tf_keras preloaded), and that then loads the .h5 (medians of the same number of runs). The last two floor rows
are the shortest runs rows 2 and 1 could be (`INT8_FLOOR`): a process decodes the 1200 images in a forked worker (as
stquant does) and evaluates our run's int8 .tflite on them (LiteRT, as stquant does), importing TensorFlow meanwhile
when the int8 model is converted (then it exits without the interpreter's teardown, as stquant's CLI does once
TensorFlow is loaded), not when it is kept: no config, no float evaluation (it fits beside the import on an idle
machine), no confusion matrices, no footprint, no summary. (The first two floor rows pay that teardown, which
stquant does not.)
usage: python benchmarks/evaluate_vs_reference.py [--repeat N]
"""

import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from measure import measure, ratio_table, repeat_count, stquant_command
from tutorial import FLOOR, MODEL, PHOTOS, REFERENCE as REFERENCE_QUANTIZE, ROOT, SHARED, TF_ENV

ST_TFLITE = MODEL.with_name("mobilenet_v2_0.35_128_fft_int8.tflite")
REFERENCE = SHARED / "bench/st_style_evaluate.py"
SPLIT = 0.2
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


INT8_FLOOR = """
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from engine.data.images import decode_all, decoding_processes
from engine.data.preprocess import ImageSpec
photos, model, with_tensorflow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "tensorflow"
classes = sorted(p for p in photos.iterdir() if p.is_dir())
files = [f for c in classes for f in sorted(c.iterdir())]
labels = [i for i, c in enumerate(classes) for f in sorted(c.iterdir())]
spec = ImageSpec(128, 128, 3, "nearest", "fit", 1 / 127.5, -1.0)
with ThreadPoolExecutor(1) as waiter, decoding_processes() as processes:
    decoding = waiter.submit(decode_all, files, spec, None, processes, True)
    if with_tensorflow:
        import tensorflow
    images, kept = decoding.result()
from engine.evaluation.accuracy import evaluate
from engine.evaluation.predictors import TFLitePredictor
evaluate(TFLitePredictor(model), images, [labels[i] for i in kept], [c.name for c in classes], spec=spec)
if with_tensorflow:
    os._exit(0)
"""
INT8_FLOORS = {
    "tensorflow": "floor: import tensorflow + int8 evaluation",
    "none": "floor: int8 evaluation, no TensorFlow",
}


def repeated_photos(folder: Path, times: int = 4) -> Path:
    root = folder / "photos_x4"
    for name in FLOWERS:
        (root / name).mkdir(parents=True)
        for path in sorted((PHOTOS / name).iterdir()):
            for copy in range(times):
                (root / name / f"{copy}_{path.name}").symlink_to(path)
    return root


def chain_eqe_config(folder: Path, photos: Path) -> Path:
    config = {
        "general": {"model_path": str(MODEL)},
        "operation_mode": "chain_eqe",
        "dataset": {
            "class_names": FLOWERS,
            "quantization_path": str(PHOTOS),
            "quantization_split": SPLIT,
            "test_path": str(photos),
        },
        "preprocessing": {
            "rescaling": {"scale": "1/127.5", "offset": -1},
            "resizing": {"aspect_ratio": "fit", "interpolation": "nearest"},
            "color_mode": "rgb",
        },
        "quantization": {
            "quantizer": "TFlite_converter",
            "quantization_type": "PTQ",
            "quantization_input_type": "uint8",
            "quantization_output_type": "float",
        },
        "mlflow": {"uri": str(folder / "mlruns")},
    }
    path = folder / "chain_eqe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    from engine.quantize.cache import QUANTIZED_FROM, StatsCache

    repeat = repeat_count(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = repeated_photos(folder)
        config = chain_eqe_config(folder, photos)
        kept, converted, ref, ref_chain = [], [], [], []
        floors: dict[str, list[tuple[float, float]]] = {name: [] for name in [*FLOOR, *INT8_FLOORS.values()]}
        for i in range(repeat):
            ref.append(measure([sys.executable, str(REFERENCE), str(MODEL), str(ST_TFLITE), str(photos)]))
            ref_quantize = measure(
                [
                    sys.executable,
                    str(REFERENCE_QUANTIZE),
                    str(MODEL),
                    str(PHOTOS),
                    str(SPLIT),
                    str(folder / "ref.tflite"),
                ]
            )
            ref_chain.append((ref[-1][0] + ref_quantize[0], max(ref[-1][1], ref_quantize[1])))
            removed = StatsCache().remove(QUANTIZED_FROM)
            converted.append(run_ours(config, folder / f"converted_{i}"))
            for name, code in FLOOR.items():
                floors[name].append(measure([sys.executable, "-c", code], env={**os.environ, **TF_ENV}))
            quantized = folder / f"converted_{i}" / "quantized_models" / "quantized_model.tflite"
            for how, name in INT8_FLOORS.items():
                floor = [sys.executable, "-c", INT8_FLOOR, str(photos), str(quantized), how]
                floors[name].append(measure(floor, cwd=ROOT, env={**os.environ, **TF_ENV}))
            kept.append(run_ours(config, folder / f"kept_{i}"))  # the int8 model the run before kept
            print(
                f"- run {i}: reference {ref[-1][0]:.1f} s (+ quantization {ref_quantize[0]:.1f} s); ours: "
                f"{removed} kept int8 model(s) removed, then {converted[-1].line()}; then {kept[-1].line()}",
                flush=True,
            )
    median = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731 - a one-line local helper
    print(f"\nmedian of {repeat} alternated runs (load average {os.getloadavg()[0]:.1f} at the end)\n")
    rows = [
        (f"evaluate float+int8, 1200 img, {which}", median(runs, 0), median(ref, 0), median(runs, 1), median(ref, 1))
        for which, runs in (
            ("int8 model kept", [(r.evaluation, r.peak) for r in kept]),
            ("int8 model converted", [(r.evaluation, r.peak) for r in converted]),
        )
    ]
    chain = [(r.wall, r.peak) for r in converted]
    rows.append(("whole chain_eqe", median(chain, 0), median(ref_chain, 0), median(chain, 1), median(ref_chain, 1)))
    rows += [(name, median(runs, 0), median(ref, 0), median(runs, 1), median(ref, 1)) for name, runs in floors.items()]
    print(ratio_table(rows))
    print("\n(the floor rows: ratios against the reference's evaluation)")


@dataclass(frozen=True)
class Ours:
    """One chain_eqe run: wall seconds, peak MiB, the wall seconds of its evaluation stages, its summary."""

    wall: float
    peak: float
    evaluation: float
    summary: dict

    def line(self) -> str:
        quantization = self.wall - self.evaluation
        accuracy, where = self.summary["accuracy"], self.summary["calibration"]["quantized_model"]
        return (
            f"int8 model {'from the cache' if where == 'cache' else where}, evaluation {self.evaluation:.1f} s (quantization stages {quantization:.1f} s "
            f"excluded; whole run {self.wall:.1f} s), accuracy float {accuracy['float']} %, quantized "
            f"{accuracy['quantized']} %"
        )


def run_ours(config: Path, run_dir: Path) -> Ours:
    wall, peak = measure(
        stquant_command("run", str(config), "--progress", "none", "--output-dir", str(run_dir)), cwd=ROOT
    )
    summary = json.loads((run_dir / "run_summary.json").read_text())
    quantization = summary["timings"]["calibration"] + summary["timings"]["layer_errors"]
    return Ours(wall, peak, wall - quantization, summary)


if __name__ == "__main__":
    from docs_tables import section

    with section("evaluate_vs_reference"):
        main()
