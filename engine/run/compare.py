"""`stquant compare`: quantize one model several ways from one model load, one decode and one statistics pass.

Every combination of the `--vary KEY=V1,V2` values is a variant (a config validated by the one schema).
The calibration images are decoded once and kept as pixels; the activation ranges of each float graph
are measured once (`engine.quantize.cache`, in memory with `--no-cache`), so variants that differ only in
granularity, input/output types or the quantizer's output format share them (with the TFLite converter, one
histogram pass also serves every `calibration_method` but minmax). Accuracy and agreement are
measured on the images `stquant run` evaluates on (`engine.run.preflight.evaluation_set`: test_path, else
validation_path, else the validation split of training_path); without any of them nothing is measured and
the comparison says so. The recommended variant meets the agreement target with the smallest activation RAM, then
flash, then estimated time. Writes `comparison.json` (an `engine.run.comparison.Comparison`) and
`comparison.md` in the comparison folder, each variant's model under `variant_<n>/`.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from pathlib import Path
from typing import Any

from engine.common.atomic import write_text_atomic
from engine.common.errors import (
    ConfigError,
    Interrupted,
    OutputError,
    StquantError,
    first_line,
    shorten,
)
from engine.config.schema import RUNNABLE_MODES, Config, dump_config, load_config
from engine.quantize.cache import StatsCache
from engine.quantize.common import ModelMemo
from engine.run.comparison import Comparison, Variant
from engine.run.events import Reporter
from engine.run.folder import VARIANTS, claimed_run_dir
from engine.run.job import Job
from engine.run.orchestrator import portable_config, quantize
from engine.run.session import Session, open_session

log = logging.getLogger(__name__)

VARIABLE_KEYS = (
    "quantization.granularity",
    "quantization.optimize",
    "quantization.quantization_input_type",
    "quantization.quantization_output_type",
    "quantization.quantizer",
    "quantization.calibration_method",
)
DEFAULT_TARGET = 99.0
NOT_MEASURED = (
    "accuracy and agreement not measured: no evaluation images (no dataset.test_path, validation_path "
    "or training_path, and every quantization image calibrates)"
)


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """`["quantization.granularity=per_channel,per_tensor", ...]` -> {key: values}; exit 2 naming a bad key."""
    varied: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise ConfigError(
                f"--vary {item}: expected KEY=V1,V2 (e.g. quantization.granularity=per_channel,per_tensor)"
            )
        if key not in VARIABLE_KEYS:
            raise ConfigError(f"--vary {key}: not a key a variant may vary; one of {', '.join(VARIABLE_KEYS)}")
        if key in varied:
            raise ConfigError(f"--vary {key}: given twice; list all its values once, comma-separated")
        listed = [value.strip() for value in values.split(",")]
        if not all(listed):
            raise ConfigError(f"--vary {key}: an empty value in {shorten(values)!r}; expected V1,V2")
        repeated = sorted({value for value in listed if listed.count(value) > 1})
        if repeated:
            raise ConfigError(f"--vary {key}: {shorten(', '.join(repeated))} given twice; each value once")
        varied[key] = listed
    if not varied:
        raise ConfigError("usage: stquant compare CONFIG --vary KEY=V1,V2 [--vary ...] (at least one --vary)")
    return varied


def check_target(target: float | None) -> float:
    """The agreement target in percent (default DEFAULT_TARGET); ConfigError (exit 2) unless a number in [0, 100]."""
    if target is None:
        return DEFAULT_TARGET
    if not 0.0 <= target <= 100.0:  # also refuses nan
        raise ConfigError(f"--target-agreement {target}: a percentage from 0 to 100")
    return target


def as_chain(config: Config) -> Config:
    """`config` as compare reads it: quantized, then evaluated as chain_eqe would (a mode it cannot run stays,
    for `prepare` to refuse)."""
    if config.operation_mode not in RUNNABLE_MODES:
        return config
    return config.model_copy(update={"operation_mode": "chain_eqe"})


def variant_configs(
    config_path: Path, overrides: list[str], varied: dict[str, list[str]]
) -> list[tuple[dict[str, Any], Config]]:
    """Each combination of the varied values as (its settings, its validated config)."""
    found: list[tuple[dict[str, Any], Config]] = []
    for values in itertools.product(*varied.values()):
        config = load_config(config_path, [*overrides, *(f"{key}={value}" for key, value in zip(varied, values))])
        settings = {key: getattr(config.quantization, key.split(".", 1)[1]) for key in varied}
        found.append((settings, config))
    return found


def variant_name(settings: dict[str, Any]) -> str:
    """`{"quantization.granularity": "per_tensor"}` -> "granularity=per_tensor"."""
    return ", ".join(f"{key.split('.', 1)[1]}={value}" for key, value in settings.items())


def compare(
    config_path: Path,
    overrides: list[str],
    vary: list[str],
    reporter: Reporter,
    output_dir: Path | None = None,
    target: float | None = None,
    board: str | None = None,
    use_cache: bool = True,
    overwrite: bool = False,
) -> Comparison:
    """Run the comparison; always write `comparison.json` (re-raising what stopped it).

    `overwrite`: `output_dir` may hold an earlier run or comparison (its `variant_*` folders are removed first)."""
    from engine.footprint.boards import find_board, unknown_board

    varied = parse_vary(vary)
    target = check_target(target)
    configs = variant_configs(config_path, overrides, varied)
    base = configs[0][1]
    board = board or base.benchmarking.board
    if board and find_board(board) is None:
        raise unknown_board(board, "--board")
    with claimed_run_dir(base, output_dir, overwrite, (VARIANTS,)) as run_dir:
        comparison = Comparison(run_dir=str(run_dir), model="", varied=varied, board=board, target_agreement=target)
        job = CompareJob(configs, reporter, run_dir, comparison, StatsCache(persist=use_cache))
        job.perform(job.execute)
    return comparison


class CompareJob(Job):
    """The stages of one comparison: prepare, decode while the model loads, then each variant."""

    def __init__(
        self,
        configs: list[tuple[dict[str, Any], Config]],
        reporter: Reporter,
        run_dir: Path,
        comparison: Comparison,
        cache: StatsCache,
    ) -> None:
        super().__init__(reporter, run_dir, comparison)
        self.configs, self.comparison, self.cache = configs, comparison, cache
        self.memo = ModelMemo()  # the variants quantize one loaded model: its optimized copy and trace are reused

    def save(self) -> None:
        """Write `comparison.json` and `comparison.md`."""
        write_text_atomic(self.run_dir / "comparison.json", self.comparison.model_dump_json(indent=2))
        write_text_atomic(self.run_dir / "comparison.md", format_markdown(self.comparison))

    def announce(self) -> None:
        self.reporter.comparison(self.comparison)

    def execute(self) -> None:
        base = self.configs[0][1]
        write_text_atomic(self.run_dir / "config.yaml", dump_config(portable_config(base)))
        session = open_session(self, as_chain(base), NOT_MEASURED)
        self.comparison.model = str(session.plan.model_path)
        self.comparison.calibration_images = session.calibration.used
        if session.evaluation is not None:
            self.comparison.evaluation_set = session.evaluation.name
            self.comparison.evaluation_source = session.evaluation.key
        self.comparison.evaluation_images = len(session.labels)
        for index, (settings, config) in enumerate(self.configs):
            variant = self._variant(index, settings, config, session)
            if variant.status == "ok" and session.evaluation is not None:
                self._measure_accuracy(variant, session)
            self.comparison.variants.append(variant)
            self.reporter.variant(variant)
        recommend(self.comparison)
        log.info("%s", self.comparison.recommendation)
        self.comparison.status = "ok"

    def _variant(self, index: int, settings: dict[str, Any], config: Config, session: Session) -> Variant:
        from engine.footprint import estimate_footprint

        name = variant_name(settings)
        variant = Variant(index=index, name=name, settings=settings, status="ok")
        if config.quantization is None:  # parse_vary varies quantization keys: each config has the section
            raise ConfigError("quantization: section required by stquant compare")
        started = time.perf_counter()
        try:
            with self.stage(f"variant_{index}"):
                result = quantize(
                    session.plan.model_path,
                    session.calibration,
                    config.quantization,
                    self.run_dir / f"variant_{index}",
                    self.progress(f"variant_{index}"),
                    session.keras_model,
                    self.cache,
                    self.memo,
                )
                session.float_tflite = session.float_tflite or result.float_tflite
                footprint = estimate_footprint(result.model_path, board=self.comparison.board)
        except (Interrupted, OutputError):
            raise  # stops the comparison, not only this variant
        except StquantError as exc:
            variant.status, variant.error = "failed", str(exc)
            log.warning("variant %d (%s) failed: %s", index, name, exc)
        else:
            variant.quantized_model = str(Path(result.model_path).resolve())
            variant.statistics = "cache" if result.statistics_cached else "computed"
            variant.weights_flash_kib = footprint.weights_flash_kib
            variant.activation_ram_kib = footprint.activation_ram_kib
            variant.estimated_inference_ms = footprint.estimated_inference_ms
        variant.seconds = round(time.perf_counter() - started, 3)
        return variant

    def _measure_accuracy(self, variant: Variant, session: Session) -> None:
        from engine.evaluation.accuracy import agreement

        float_result = session.evaluate_float(self, self.memo.trace)
        self.comparison.float_accuracy = round(float_result.accuracy, 2)
        assert variant.quantized_model is not None  # an "ok" variant
        result = session.evaluate(variant.quantized_model, f"evaluate_variant_{variant.index}", self)
        variant.accuracy = round(result.accuracy, 2)
        variant.agreement = round(agreement(float_result, result), 2)
        variant.meets_target = variant.agreement >= self.comparison.target_agreement


def recommend(comparison: Comparison) -> None:
    """Set the recommended variant: meeting the agreement target, smallest activation RAM, then flash, then time."""
    comparison.recommended = None
    ok = [v for v in comparison.variants if v.status == "ok"]
    meeting = [v for v in ok if v.meets_target]
    if not meeting:
        measured = [v for v in ok if v.agreement is not None]
        if measured:
            best = max(measured, key=lambda v: v.agreement or 0.0)  # all measured: not None
            comparison.recommendation = (
                f"no variant reaches {comparison.target_agreement} % agreement; the best is "
                f"variant {best.index} ({best.name}) at {best.agreement} %"
            )
        else:
            comparison.recommendation = "no variant could be measured for agreement: none recommended"
        return
    chosen = min(
        meeting,
        key=lambda v: (
            v.activation_ram_kib,
            v.weights_flash_kib,
            math.inf if v.estimated_inference_ms is None else v.estimated_inference_ms,
        ),
    )
    comparison.recommended = chosen.index
    comparison.recommendation = (
        f"recommended: variant {chosen.index} ({chosen.name}): {chosen.agreement} % agreement "
        f"(target {comparison.target_agreement} %), {chosen.activation_ram_kib} KiB RAM, "
        f"{chosen.weights_flash_kib} KiB flash"
    )


def _rows(comparison: Comparison) -> list[list[str]]:
    def fmt(value: float | None, digits: int = 2) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = [["#", "variant", "agreement %", "accuracy %", "flash KiB", "RAM KiB", "time ms", "statistics"]]
    for v in comparison.variants:
        mark = "*" if v.index == comparison.recommended else ""
        if v.status != "ok":
            rows.append([f"{v.index}{mark}", v.name, "failed", "", "", "", "", first_line(v.error or "")])
            continue
        rows.append(
            [
                f"{v.index}{mark}",
                v.name,
                fmt(v.agreement),
                fmt(v.accuracy),
                fmt(v.weights_flash_kib),
                fmt(v.activation_ram_kib),
                fmt(v.estimated_inference_ms),
                v.statistics,
            ]
        )
    return rows


def format_table(comparison: Comparison) -> str:
    """The plain-text table `stquant compare` prints, with the evaluation set and the recommendation."""
    rows = _rows(comparison)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    return "\n".join([*lines, _evaluation_line(comparison), comparison.recommendation])


def format_markdown(comparison: Comparison) -> str:
    """`comparison.md`: the same table in Markdown."""
    rows = _rows(comparison)
    lines = [
        f"# stquant compare: {Path(comparison.model).name or comparison.model}",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]]
    return "\n".join([*lines, "", _evaluation_line(comparison), "", comparison.recommendation or comparison.status, ""])


def _evaluation_line(comparison: Comparison) -> str:
    if not comparison.evaluation_set:
        return NOT_MEASURED
    where = {
        "dataset.validation_split": "the validation split of dataset.training_path",
        "dataset.quantization_split": "the quantization images not used for calibration",
    }.get(comparison.evaluation_source or "", comparison.evaluation_source)
    floats = f"; float model {comparison.float_accuracy:.2f} %" if comparison.float_accuracy is not None else ""
    return (
        f"accuracy and agreement on {comparison.evaluation_images} images of {where}{floats}; "
        f"{comparison.calibration_images} calibration images"
    )
