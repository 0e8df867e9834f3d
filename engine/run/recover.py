"""`stquant recover`: when int8 loses too much accuracy, find the quantization that meets a target at the least cost.

One model load, one decode, one statistics pass (`engine.run.session`). The search, each step measured on the
full evaluation set (the images `stquant run` evaluates on):
1. the config as given;
2. the remedies that cost nothing on the board: every `quantization.calibration_method`, then
   `bias_correction` (Keras models) with the best method;
3. layers kept in float (`quantization.float_layers`), one at a time: the layers with the lowest SQNR in the
   per-layer report are ranked by how much reverting each one alone helps on a subset of the evaluation
   images (NNCF's accuracy-control approach), then added in that order, each checked on the full set (with the
   model the ranking quantized); a layer that does not help is dropped and the rest ranked again; the search
   stops when the target is met,
   when the next model would exceed the budget (RAM, flash, estimated time on the board), or when no layer helps;
4. once the target is met with several float layers, each is tried back in int8 (the first kept first) and
   stays int8 when the target is still met.

The run folder is a normal one: the result is `quantized_model` of `run_summary.json` (copied into
`quantization.export_dir`), `config.yaml` re-runs it with `stquant run`, `recovery.json` (an
`engine.run.recovery.Recovery`) lists every step, each step's model stays in `recovery_steps/`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.common.atomic import write_bytes_atomic, write_text_atomic
from engine.common.errors import ConfigError, EngineError
from engine.config.schema import Config, Quantization, dump_config, load_config
from engine.models.load import LazyKerasModel
from engine.quantize.cache import StatsCache
from engine.quantize.common import ModelMemo
from engine.run.compare import as_chain
from engine.run.events import Reporter
from engine.run.folder import STEPS, claimed_run_dir
from engine.run.job import Job
from engine.run.orchestrator import INTERMEDIATES, portable_config, quantize
from engine.run.recovery import Budget, Recovery, Step, Target
from engine.run.session import Session, open_session
from engine.run.summary import Accuracy, Calibration, Footprint, RunSummary

if TYPE_CHECKING:
    from engine.evaluation.accuracy import EvalResult
    from engine.evaluation.layer_report import LayerRow

log = logging.getLogger(__name__)

CANDIDATES = 10  # layers ranked at a time: the lowest SQNR of the per-layer report
CHUNKS = 3  # at most this many times CANDIDATES per round, while none helps
RANKING_IMAGES = 200  # evaluation images a candidate is ranked on (spread over the whole set)
MIN_GAIN = 1.0  # points a free remedy must gain to be kept
NOT_MEASURED = (
    "stquant recover needs evaluation images (dataset.test_path, validation_path, training_path or quantization_path "
    "with a quantization_split below 1)"
)
METHODS = typing.get_args(Quantization.model_fields["calibration_method"].annotation)


def rerun_mode(given: str) -> str:
    """The mode of the config `recover` writes: the search evaluated every step, so `stquant run` of that config
    evaluates too (chain_eqe), and still benchmarks when the given mode did (chain_eqeb)."""
    return "chain_eqeb" if given in ("benchmarking", "chain_qb", "chain_eqeb") else "chain_eqe"


def target_and_budget(
    max_drop: float | None,
    agreement: float | None,
    board: str | None = None,
    max_ram: float | None = None,
    max_flash: float | None = None,
    max_ms: float | None = None,
) -> tuple[Target, Budget]:
    """The target and budget of the command line; ConfigError (exit 2) naming an option out of range."""
    if (max_drop is None) == (agreement is None):
        raise ConfigError("stquant recover: give one target, --max-drop PT or --target-agreement PCT")
    if agreement is not None and not 0.0 <= agreement <= 100.0:  # also refuses nan
        raise ConfigError(f"--target-agreement {agreement}: a percentage from 0 to 100")
    if max_drop is not None and not 0.0 <= max_drop <= 100.0:
        raise ConfigError(f"--max-drop {max_drop}: points from 0 to 100")
    for option, value in (("--max-ram", max_ram), ("--max-flash", max_flash), ("--max-ms", max_ms)):
        if value is not None and not value > 0.0:
            raise ConfigError(f"{option} {value}: a positive number")
    target = (
        Target(kind="max_drop", value=max_drop) if max_drop is not None else Target(kind="agreement", value=agreement)
    )
    return target, Budget(board=board, max_ram_kib=max_ram, max_flash_kib=max_flash, max_ms=max_ms)


def recover(
    config_path: Path,
    overrides: list[str],
    target: Target,
    budget: Budget,
    reporter: Reporter,
    output_dir: Path | None = None,
    use_cache: bool = True,
    overwrite: bool = False,
) -> Recovery:
    """Search; always write `recovery.json` and `run_summary.json`. Raises EngineError (exit 1) when the target is
    not met (the best model is kept), and what stopped the search otherwise."""
    from engine.footprint.boards import find_board, unknown_board

    config = load_config(config_path, overrides)
    if config.quantization is None:
        raise ConfigError("quantization: section required by stquant recover")
    board = budget.board or config.benchmarking.board
    if board and find_board(board) is None:
        raise unknown_board(board, "--board")
    if budget.max_ms is not None and not board:
        raise ConfigError("--max-ms: needs a board to estimate the time on (--board or benchmarking.board)")
    budget = budget.model_copy(update={"board": board})
    writes = (config.quantization.export_dir, STEPS, INTERMEDIATES)
    with claimed_run_dir(config, output_dir, overwrite, writes) as run_dir:
        job = RecoverJob(config, reporter, run_dir, target, budget, StatsCache(persist=use_cache))
        job.perform(job.execute)
    return job.recovery


class RecoverJob(Job):
    """The stages of one recovery; its record is the run summary of the result, `recovery` the search."""

    def __init__(
        self, config: Config, reporter: Reporter, run_dir: Path, target: Target, budget: Budget, cache: StatsCache
    ) -> None:
        self.summary = RunSummary(operation_mode="recover", run_dir=str(run_dir))
        super().__init__(reporter, run_dir, self.summary)
        self.config, self.cache, self.memo = config, cache, ModelMemo()
        assert config.quantization is not None  # checked by `recover`
        self.base: Quantization = config.quantization
        self.recovery = Recovery(
            run_dir=str(run_dir), quantizer=self.base.quantizer, target=target, budget=budget, model=""
        )
        self.session: Session | None = None
        self.rounds = 0  # rounds of ranking so far
        # quantized model -> the float model it was made from and the converter's float graph of it, if kept (for
        # the per-layer report)
        self.float_models: dict[str, tuple[Any, bytes | None]] = {}
        # settings of a ranked candidate that helped -> its model, kept for the step that tries it on the full set
        self.ranked: dict[tuple[Any, ...], tuple[Path, Path]] = {}  # (its folder, its model)

    def save(self) -> None:
        """Write `recovery.json` and `run_summary.json` (the status said the same way in both)."""
        status = self.summary.status
        if status in ("failed", "interrupted") and self.recovery.status == "running":
            self.recovery.status = status
        write_text_atomic(self.run_dir / "recovery.json", self.recovery.model_dump_json(indent=2))
        write_text_atomic(self.run_dir / "run_summary.json", self.summary.to_json())

    def announce(self) -> None:
        self.reporter.recovery(self.recovery)
        self.reporter.result(self.summary)

    # ------------------------------------------------------------ the search

    def execute(self) -> None:
        session = self.session = open_session(self, as_chain(self.config), NOT_MEASURED)
        if session.evaluation is None:
            raise ConfigError(NOT_MEASURED)
        self.recovery.model = self.summary.model = str(session.plan.model_path)
        self.recovery.evaluation_source = session.evaluation.key
        self.recovery.evaluation_images = len(session.labels)
        current = self._decided(self._step("as configured", self._settings(self.base), kept=True))
        self.recovery.float_accuracy = round(self._float().accuracy, 2)
        current = self._free_remedies(current)
        if not current.meets_target:
            current = self._float_layers(current)
        if current.meets_target and len(current.settings["float_layers"]) > 1:
            current = self._pruned(current)
        self._finish(current)

    def _free_remedies(self, current: Step) -> Step:
        """Every other activation-range method, then bias correction with the best: the best step."""
        if current.meets_target:
            return current
        best = current
        for method in METHODS:
            if method != current.settings["calibration_method"]:
                step = self._step(f"calibration_method={method}", {**current.settings, "calibration_method": method})
                best = self._better(step, best)
                if best.meets_target:
                    return best
        if not best.settings["bias_correction"] and self.session and self.session.keras_model is not None:
            step = self._step("bias_correction", {**best.settings, "bias_correction": True})
            best = self._better(step, best)
        return best

    def _better(self, step: Step, best: Step) -> Step:
        """The better of two free remedies (marks which one the search goes on from): `step` only when it gains at
        least MIN_GAIN (so that a difference of an image or two does not steer the rest of the search) or when it
        meets the target and `best` does not."""
        meets = step.meets_target and not best.meets_target
        if meets or self._score(step)[0] >= self._score(best)[0] + MIN_GAIN:
            best.kept, step.kept = False, True
            return self._decided(step)
        self._decided(step)
        return best

    def _decided(self, step: Step) -> Step:
        """Announce a step once the search decided whether to go on from it."""
        self.reporter.recovery_step(step)
        mark = "meets the target" if step.meets_target else "kept" if step.kept else "not kept"
        budget = "" if step.within_budget else f", over budget: {self._over(step)}"
        log.info(
            "step %d (%s): agreement %.2f %%, drop %.2f points, RAM %.2f KiB, flash %.2f KiB%s: %s",
            step.index,
            step.remedy,
            step.agreement,
            step.drop,
            step.activation_ram_kib,
            step.weights_flash_kib,
            budget,
            mark,
        )
        return step

    def _float_layers(self, current: Step) -> Step:
        """Greedy: rank the candidate layers on the current model, keep the first that helps on the full set in
        float, and rank again from there; stop at the target, at the budget, or when no candidate helps."""
        try:
            return self._add_float_layers(current)
        finally:
            self._drop_ranked()

    def _add_float_layers(self, current: Step) -> Step:
        """The search of `_float_layers`."""
        tried: set[str] = set()
        while True:
            for layer in self._ranked(current, tried):
                tried.add(layer)
                settings = {**current.settings, "float_layers": [*current.settings["float_layers"], layer]}
                step = self._step(f"float: {layer}", settings)
                if not step.within_budget:
                    self._decided(step)
                    self.recovery.outcome = f"the next layer ({layer}) would exceed {self._over(step)}"
                    return current
                if self._score(step) > self._score(current):
                    step.kept = True
                    current = self._decided(step)
                    break
                self._decided(step)
            else:
                self.recovery.outcome = "no other layer kept in float helps"
                return current
            if current.meets_target:
                return current

    def _pruned(self, current: Step) -> Step:
        """Back to int8, one at a time (the first kept first), every float layer the target does not need: a layer
        added early may be unneeded once later ones are float."""
        for layer in list(current.settings["float_layers"]):
            kept = [name for name in current.settings["float_layers"] if name != layer]
            step = self._step(f"int8 again: {layer}", {**current.settings, "float_layers": kept})
            if step.meets_target and step.within_budget:
                current.kept, step.kept = False, True
                current = step
            self._decided(step)
        return current

    def _ranked(self, current: Step, tried: set[str]) -> list[str]:
        """Untried layers (lowest SQNR first, CANDIDATES at a time, the next ones only while none helps, at most
        CHUNKS times) sorted by how much keeping each alone in float helps on the ranking images; only those that
        help."""
        assert self.session is not None
        self.rounds += 1
        self._drop_ranked()
        with self.stage(f"rank_{self.rounds}"):
            rows = self._layer_rows(current)
            done = set(current.settings["float_layers"]) | tried
            candidates = [row["layer"] for row in rows if row["layer"] not in done and row["sqnr_db"] is not None]
            subset = self._ranking_subset()
            base = self._subset_score(self._on_subset(Path(current.quantized_model), subset), subset)
            gains: dict[str, float] = {}
            for position, layer in enumerate(candidates[: CANDIDATES * CHUNKS]):
                if position and position % CANDIDATES == 0 and any(gain > 0 for gain in gains.values()):
                    break  # the next chunk only when none of this one helps
                settings = {**current.settings, "float_layers": [*current.settings["float_layers"], layer]}
                folder = self.run_dir / STEPS / "ranking" / str(position)
                try:
                    model = self._quantized(settings, folder)
                except ConfigError:  # a layer of the report the quantizer cannot keep in float (no op of that name)
                    continue
                gains[layer] = self._subset_score(self._on_subset(model, subset), subset) - base
                log.info("ranking: %s alone in float changes the score by %+.2f", layer, gains[layer])
                if gains[layer] > 0:
                    self.ranked[_key(settings)] = (folder, model)  # the next steps try it on the full set
                else:
                    shutil.rmtree(folder)
        return [layer for layer in sorted(gains, key=lambda name: -gains[name]) if gains[layer] > 0]

    # ------------------------------------------------------------ measuring

    def _step(self, remedy: str, settings: dict[str, Any], kept: bool = False) -> Step:
        """Quantize with `settings`, measure on the full evaluation set, record and announce the step."""
        from engine.evaluation.accuracy import agreement
        from engine.footprint import estimate_footprint

        assert self.session is not None
        index = len(self.recovery.steps)
        started = time.perf_counter()
        model = self._quantized(settings, self.run_dir / STEPS / f"step_{index}", f"step_{index}")
        result = self.session.evaluate(model, f"evaluate_step_{index}", self)
        self.recovery.evaluations += 1
        float_result = self._float()
        footprint = estimate_footprint(model, board=self.recovery.budget.board)
        accuracy = round(result.accuracy, 2)
        step = Step(
            index=index,
            remedy=remedy,
            settings=settings,
            kept=kept,
            quantized_model=str(model.resolve()),
            accuracy=accuracy,
            agreement=round(agreement(float_result, result), 2),
            drop=round(float_result.accuracy - result.accuracy, 2),
            weights_flash_kib=footprint.weights_flash_kib,
            activation_ram_kib=footprint.activation_ram_kib,
            estimated_inference_ms=footprint.estimated_inference_ms,
            within_budget=True,
            meets_target=False,
            seconds=0.0,
        )
        step.within_budget = not self._over(step)
        step.meets_target = self._meets(step.agreement, step.drop)
        step.seconds = round(time.perf_counter() - started, 3)
        self.recovery.steps.append(step)
        return step

    def _layer_rows(self, step: Step) -> list[LayerRow]:
        """The per-layer report of the step's model: on the converter's float graph when it was kept (as a run's),
        else on the float model's layers."""
        from engine.evaluation.layer_report import layer_report

        assert self.session is not None
        float_model, float_tflite = self.float_models[step.quantized_model]
        if float_tflite is not None and not isinstance(float_model, LazyKerasModel):
            float_model = LazyKerasModel(self.session.plan.model_path, float_model)  # the user's model, loaded
        quantized = Path(step.quantized_model)
        return layer_report(float_model, quantized, self.session.calibration, float_tflite=float_tflite)

    def _quantized(self, settings: dict[str, Any], folder: Path, stage: str | None = None) -> Path:
        """Quantize the model with the base settings and `settings` into `folder` (as stage `stage`, if given);
        the model's path."""
        assert self.session is not None
        quantization = self.base.model_copy(update=settings)
        with self.stage(stage) if stage else contextlib.nullcontext():
            if _key(settings) in self.ranked:
                return self._reused(*self.ranked.pop(_key(settings)), folder)
            result = quantize(
                self.session.plan.model_path,
                self.session.calibration,
                quantization,
                folder,
                self.progress(stage) if stage else None,
                self.session.keras_model,
                self.cache,
                self.memo,
            )
        self.session.float_tflite = self.session.float_tflite or result.float_tflite
        self.float_models[str(Path(result.model_path).resolve())] = (result.float_model, result.float_tflite)
        if self.summary.calibration is None:
            self.summary.calibration = Calibration(
                source=self.session.calibration.source,
                images=result.calibration_images,
                skipped=result.calibration_skipped,
                statistics="cache" if result.statistics_cached else "computed",
                quantized_model="cache" if result.quantized_cached else "converted",
            )
        return Path(result.model_path)

    def _reused(self, ranked: Path, model: Path, folder: Path) -> Path:
        """Move a ranked candidate's folder (its model, and the ONNX intermediates) to `folder`: the model there."""
        moved = folder / model.relative_to(ranked)
        ranked.rename(folder)
        float_model, float_tflite = self.float_models.pop(str(model.resolve()))
        if isinstance(float_model, Path) and float_model.is_relative_to(ranked):  # the ONNX quantizer's float graph
            float_model = folder / float_model.relative_to(ranked)
        self.float_models[str(moved.resolve())] = (float_model, float_tflite)
        log.info("%s: the model quantized for the ranking, same settings", moved)
        return moved

    def _drop_ranked(self) -> None:
        """Forget the ranked candidates' models (the search went on from another step, or ended)."""
        self.ranked.clear()
        shutil.rmtree(self.run_dir / STEPS / "ranking", ignore_errors=True)

    def _float(self) -> EvalResult:
        assert self.session is not None
        return self.session.evaluate_float(self, self.memo.trace)

    def _ranking_subset(self) -> np.ndarray:
        """Indices of the ranking images: spread over the evaluation set (its images are grouped by class)."""
        assert self.session is not None
        count = len(self.session.labels)
        picked = np.unique(np.linspace(0, count - 1, min(count, RANKING_IMAGES)).astype(int))
        self.recovery.ranking_images = len(picked)
        return picked

    def _on_subset(self, model: Path, subset: np.ndarray) -> EvalResult:
        assert self.session is not None
        self.recovery.evaluations += 1
        return self.session.evaluate(model, None, self, subset)

    def _subset_score(self, result: EvalResult, subset: np.ndarray) -> float:
        float_predictions = self._float().predictions[subset]
        if self.recovery.target.kind == "agreement":
            return 100.0 * float(np.mean(result.predictions == float_predictions))
        return result.accuracy

    def _score(self, step: Step) -> tuple[float, float]:
        """What the search maximises: agreement (then accuracy), or accuracy (then agreement)."""
        if self.recovery.target.kind == "agreement":
            return (step.agreement, step.accuracy)
        return (step.accuracy, step.agreement)

    def _meets(self, agreement: float, drop: float) -> bool:
        target = self.recovery.target
        return agreement >= target.value if target.kind == "agreement" else drop <= target.value

    def _over(self, step: Step) -> str:
        """What of the budget `step` exceeds ('' when it fits)."""
        from engine.footprint.boards import find_board

        budget = self.recovery.budget
        over = []
        if budget.max_ram_kib is not None and step.activation_ram_kib > budget.max_ram_kib:
            over.append(f"--max-ram {budget.max_ram_kib:g} KiB (needs {step.activation_ram_kib:.2f})")
        if budget.max_flash_kib is not None and step.weights_flash_kib > budget.max_flash_kib:
            over.append(f"--max-flash {budget.max_flash_kib:g} KiB (needs {step.weights_flash_kib:.2f})")
        ms = step.estimated_inference_ms
        if budget.max_ms is not None and ms is not None and ms > budget.max_ms:
            over.append(f"--max-ms {budget.max_ms:g} ms (needs {ms:.2f})")
        board = find_board(budget.board) if budget.board else None
        if board is not None and step.activation_ram_kib > board.ram_kib:
            over.append(f"{board.name}'s {board.ram_kib} KiB RAM (needs {step.activation_ram_kib:.2f})")
        if board is not None and step.weights_flash_kib > board.flash_kib:
            over.append(f"{board.name}'s {board.flash_kib} KiB flash (needs {step.weights_flash_kib:.2f})")
        return "; ".join(over)

    # ------------------------------------------------------------ the result

    def _finish(self, best: Step) -> None:
        """Make `best` the run's result: its model, config, run summary; exit 1 when it misses the target."""
        recovery, target = self.recovery, self.recovery.target
        recovery.best = best.index
        model = self._publish(best)
        self._summarise(best, model)
        layers = best.settings["float_layers"]
        how = f"{len(layers)} float layer{'s' * (len(layers) != 1)}" + (f" ({', '.join(layers)})" if layers else "")
        reached = f"agreement {best.agreement} %" if target.kind == "agreement" else f"drop {best.drop} points"
        wanted = f"{target.value:g} %" if target.kind == "agreement" else f"at most {target.value:g} points"
        if best.meets_target:
            recovery.status = "met"
            recovery.outcome = f"target met at step {best.index} ({reached}, target {wanted}) with {how}"
            log.info("%s", recovery.outcome)
            return
        recovery.status = "not_met"
        stopped = recovery.outcome or "no remedy helps"
        recovery.outcome = (
            f"target not met: best {reached} (target {wanted}) with {how}; {stopped}; best model: {model}"
        )
        raise EngineError(recovery.outcome)

    def _publish(self, best: Step) -> Path:
        """Copy the best step's model into `quantization.export_dir` and write the config that re-runs it."""
        source = Path(best.quantized_model)
        model = self.run_dir / self.base.export_dir / source.name
        write_bytes_atomic(model, source.read_bytes())
        data = portable_config(self.config)
        data["operation_mode"] = rerun_mode(self.config.operation_mode)
        data["quantization"].update(best.settings)
        write_text_atomic(self.run_dir / "config.yaml", dump_config(data))
        return model.resolve()

    def _summarise(self, best: Step, model: Path) -> None:
        from engine.footprint import estimate_footprint
        from engine.footprint.boards import board_fit

        assert self.session is not None and self.session.evaluation is not None
        summary, float_accuracy = self.summary, self._float().accuracy
        summary.quantized_model = str(model)
        summary.accuracy = Accuracy(
            set=self.session.evaluation.name,
            images=len(self.session.labels),
            float=round(float_accuracy, 2),
            quantized=best.accuracy,
            agreement=best.agreement,
            difference=round(best.accuracy - float_accuracy, 2),
        )
        board = self.recovery.budget.board
        footprint = estimate_footprint(model, board=board)
        summary.footprint = Footprint(**footprint.to_dict(), board_fit=board_fit(board, footprint) if board else None)
        summary.status = "ok"

    @staticmethod
    def _settings(settings: Quantization) -> dict[str, Any]:
        return {
            "calibration_method": settings.calibration_method,
            "bias_correction": settings.bias_correction,
            "float_layers": list(settings.float_layers),
        }


def _key(settings: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a quantization of the search: its settings."""
    return (settings["calibration_method"], settings["bias_correction"], tuple(settings["float_layers"]))
