"""STM32Cube.AI's published figures for the shared model-zoo files, read from
`../shared/assets/models/cubeai_reference/reference_figures.tsv` (the one copy of them; the test suite and
`benchmarks/footprint_vs_cubeai.py` both read it here)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple


class Published(NamedTuple):
    """The newest STM32Cube.AI release's figures for one file."""

    release: str
    activation_ram_kib: float
    h747_ms: float
    f769_ms: float | None


def published_figures(models: Path) -> dict[str, Published]:
    """{path under `models`: figures of the newest release published for it}; {} without the table."""
    table = models / "cubeai_reference" / "reference_figures.tsv"
    if not table.exists():
        return {}
    newest: dict[str, Published] = {}
    with table.open(encoding="utf-8") as stream:
        for row in csv.reader((line for line in stream if not line.startswith("#")), delimiter="\t"):
            name, release, _, ram, h747, f769 = row
            figures = Published(release, float(ram), float(h747), None if f769 == "-" else float(f769))
            if name not in newest or _version(release) > _version(newest[name].release):
                newest[name] = figures
    return {_located(models, name): figures for name, figures in newest.items()}


def _version(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def _located(models: Path, name: str) -> str:
    """The file's path under `models` (the table's files are in cubeai_reference/, the tutorial's in its own folder)."""
    if (models / "cubeai_reference" / name).exists():
        return f"cubeai_reference/{name}"
    return str(next(models.glob(f"*/{name}")).relative_to(models))
