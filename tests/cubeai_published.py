"""STM32Cube.AI's published figures for the shared model-zoo files, read from
`../shared/assets/models/cubeai_reference/reference_figures.tsv` and `reference_figures_new.tsv` (the one copy
of them; the test suite and `benchmarks/footprint_vs_cubeai.py` both read them here)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

TABLES = ("reference_figures.tsv", "reference_figures_new.tsv")
ALLOCATOR_RELEASE = "8.1.0"  # the release whose placement rules the planner reproduces


# ST MNIST v1 28x28 (github.com/STMicroelectronics/stm32ai-modelzoo, image_classification/models/stmnist/README.md,
# STM32Cube.AI 7.3.0, STM32H747I-DISCO at 400 MHz): ms per inference of the float .h5 and of the int8 .tflite,
# the model zoo's one pair of times of the same model in float and int8 on the same board that we found.
ST_MNIST_MS = {"float": 14.63, "int8": 4.718}


class Published(NamedTuple):
    """One STM32Cube.AI release's figures for one file."""

    release: str
    activation_ram_kib: float
    h747_ms: float
    f769_ms: float | None


def published_releases(models: Path) -> dict[str, dict[str, Published]]:
    """{path under `models`: {release: its figures}} from both tables; {} without them."""
    found: dict[str, dict[str, Published]] = {}
    for name in TABLES:
        table = models / "cubeai_reference" / name
        if not table.exists():
            continue
        with table.open(encoding="utf-8") as stream:
            for row in csv.reader((line for line in stream if not line.startswith("#")), delimiter="\t"):
                model, release, _, ram, h747, f769 = row
                figures = Published(release, float(ram), float(h747), None if f769 == "-" else float(f769))
                found.setdefault(model, {})[release] = figures
    return {_located(models, model): releases for model, releases in found.items()}


def published_figures(models: Path) -> dict[str, Published]:
    """{path under `models`: figures of the newest release published for it}; {} without the tables."""
    return {
        rel: max(releases.values(), key=lambda p: _version(p.release))
        for rel, releases in published_releases(models).items()
    }


def allocator_figure(releases: dict[str, Published]) -> Published:
    """The figures of the planner's release, or of the only release published."""
    return releases.get(ALLOCATOR_RELEASE) or next(iter(releases.values()))


def _version(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def _located(models: Path, name: str) -> str:
    """The file's path under `models` (the table's files are in cubeai_reference/, the tutorial's in its own folder)."""
    if (models / "cubeai_reference" / name).exists():
        return f"cubeai_reference/{name}"
    return str(next(models.glob(f"*/{name}")).relative_to(models))
