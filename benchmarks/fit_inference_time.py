"""Fit the cycle coefficients of `engine/footprint/timing.py` on published STM32H747I-DISCO times.

Fit set: the six shared model-zoo files (`footprint_vs_cubeai.PUBLISHED`) and MobileNet v2 0.35 128
ImageNet (rebuilt with Keras: the one published model with a large dense head). Least squares
on the relative error; prints the coefficients to paste into `CYCLES` and the fit error per model.

    python benchmarks/fit_inference_time.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import footprint_vs_cubeai as bench
from engine.footprint.tflite import read_tflite
from engine.footprint.timing import CYCLES, cost_kind, cost_units

MHZ = 400
EXTRA = "mobilenet_v2_0.35_128 (ImageNet, in the time fit)"


def features(model: Path) -> list[float]:
    """Units charged per cost kind (the columns of the fit), in `CYCLES` order."""
    graph = read_tflite(model)
    totals = dict.fromkeys(CYCLES, 0.0)
    for op in graph.ops:
        kind = cost_kind(op)
        if kind:
            totals[kind] += cost_units(graph, op)
    return list(totals.values())


def main() -> None:
    models = {Path(rel).name: (bench.ASSETS / rel, p.h747_ms) for rel, p in bench.PUBLISHED.items()}
    spec, _, ms = bench.HELDOUT[EXTRA]
    models[EXTRA] = (bench._build_int8(EXTRA, spec, bench.default_cache()), ms)  # noqa: SLF001 - reuses the sibling benchmark
    x = np.array([features(path) for path, _ in models.values()])
    cycles = np.array([ms * MHZ * 1000 for _, ms in models.values()])
    weights = 1 / cycles
    coef, *_ = np.linalg.lstsq(x * weights[:, None], cycles * weights, rcond=None)
    print("CYCLES =", {kind: round(float(c), 4) for kind, c in zip(CYCLES, coef)})
    for name, predicted, measured in zip(models, x @ coef, cycles):
        print(f"  {name:50} {100 * (predicted / measured - 1):+6.1f} %")


if __name__ == "__main__":
    from docs_tables import section

    with section("fit_inference_time", preformatted=True):
        main()
