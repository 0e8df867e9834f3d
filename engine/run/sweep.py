"""`stquant sweep`: many configs, each with every combination of the `--vary` values, one `stquant run` per cell.

A cell is one config with one combination of the varied values (`engine.run.compare.parse_vary`,
`variant_configs`): a normal run folder `<sweep>/<config name>/variant_<n>/`, run by the orchestrator
(`engine.run.orchestrator.run`) inside a worker process (`engine.run.executors`) that keeps TensorFlow loaded
from one cell to the next. Each cell's figures are read from its `run_summary.json`. A failed cell never stops
the sweep. `--resume` reuses a cell whose folder holds an ok `run_summary.json`, a config.yaml of the same
resolved config (`config_hash`: output locations left out) and a `sweep_cell.json` of the same code version. Writes `sweep.json`
(an `engine.run.sweep_record.Sweep`, rewritten after every cell) and `sweep.md`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from engine import __version__
from engine.common.atomic import write_text_atomic
from engine.common.errors import ConfigError, InputError, Interrupted, StquantError, first_line
from engine.config.schema import Config, load_config
from engine.models.files import trust_stored_code
from engine.quantize.cache import cache_folder
from engine.run.compare import parse_vary, variant_configs, variant_name
from engine.run.events import Reporter
from engine.run.executors import LocalPool, Pool, RayPool, check_address, import_ray, interruptible, stopping
from engine.run.folder import RECORDS, locked, make_run_dir, make_unique_run_dir
from engine.run.job import INTERRUPTED, Job
from engine.run.orchestrator import PATH_KEYS, portable_config, run
from engine.run.protocol import SweepProgressEvent
from engine.run.summary import RunSummary
from engine.run.sweep_record import Cell, Sweep

log = logging.getLogger(__name__)

MARKER = "sweep_cell.json"  # in each cell's run folder: the cell as the sweep last recorded it
AS_GIVEN = "as given"
WAIT_SECONDS = 1.0  # how often the driver wakes up while cells run (Ctrl-C, progress)
CONFIG_SUFFIXES = (".yaml", ".yml")


def sweep(
    paths: list[Path],
    vary: list[str],
    reporter: Reporter,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    output_dir: Path | None = None,
    resume: bool = False,
    board: str | None = None,
    use_cache: bool = True,
    trusted: bool = False,
) -> Sweep:
    """Run every cell; always write `sweep.json` and `sweep.md` (re-raising what stopped the sweep itself).
    `trusted`: the cells may run code stored in model files (`--trust-model`)."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: at least 1")
    if resume and output_dir is None:
        raise ConfigError("--resume: name the sweep folder to finish with --output-dir")
    if address is not None and executor != "ray":
        raise ConfigError("--address: only with --executor ray")
    if executor == "ray":  # before anything is written
        import_ray()
        if address is not None:
            check_address(address)
    varied = parse_vary(vary) if vary else {}
    overrides = [f"benchmarking.board={board}"] if board else []
    files = config_files(paths)
    run_dir = sweep_dir(output_dir)
    with locked(run_dir, "--output-dir"):
        check_sweep_dir(run_dir, resume)
        record = Sweep(
            run_dir=str(run_dir), code_version=__version__, executor=executor, jobs=jobs, address=address, varied=varied
        )
        record.cells = plan_cells(files, overrides, varied, run_dir)
        job = SweepJob(record, reporter, run_dir, executor, resume, (use_cache, trusted))
        job.perform(job.execute)
    return record


def config_files(paths: list[Path]) -> list[Path]:
    """The config files named, a folder standing for its *.yaml/*.yml files (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())
            if not found:
                raise InputError(f"{path}: no .yaml config in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such config file or folder")
    return [file.resolve() for file in files]


def sweep_dir(output_dir: Path | None) -> Path:
    """`--output-dir`, else a new `experiments_outputs/sweep_<date>` in the working directory."""
    if output_dir is not None:
        return make_run_dir(output_dir, "--output-dir")
    return make_unique_run_dir(Path("experiments_outputs") / time.strftime("sweep_%Y_%m_%d_%H_%M_%S"), "--output-dir")


def check_sweep_dir(run_dir: Path, resume: bool) -> None:
    """ConfigError if `run_dir` holds a run, or a sweep without --resume."""
    held = [name for name in RECORDS if (run_dir / name).exists()]
    if held:
        raise ConfigError(f"--output-dir: {run_dir} holds a run ({held[0]}); choose another folder for the sweep")
    if (run_dir / "sweep.json").exists() and not resume:
        raise ConfigError(
            f"--output-dir: {run_dir} already holds a sweep (sweep.json); add --resume to finish it or choose "
            "another folder"
        )


def plan_cells(files: list[Path], overrides: list[str], varied: dict[str, list[str]], run_dir: Path) -> list[Cell]:
    """One cell per config and combination of the varied values; a config that cannot be read is one failed cell."""
    cells: list[Cell] = []
    names: set[str] = set()
    combinations = list(itertools.product(*varied.values()))
    for file in files:
        folder = _unique(file.stem, names)
        try:
            configs = variant_configs(file, overrides, varied) if varied else [({}, load_config(file, overrides))]
        except StquantError as exc:
            cells.append(
                Cell(
                    index=len(cells),
                    config=str(file),
                    variant=AS_GIVEN,
                    overrides=overrides,
                    run_dir=str(run_dir / folder),
                    code_version=__version__,
                    status="failed",
                    failed_stage="config",
                    error=first_line(exc),
                )
            )
            continue
        for number, ((settings, config), values) in enumerate(zip(configs, combinations)):
            cell_overrides = [*overrides, *(f"{key}={value}" for key, value in zip(varied, values))]
            cells.append(
                Cell(
                    index=len(cells),
                    config=str(file),
                    variant=variant_name(settings) or AS_GIVEN,
                    overrides=cell_overrides,
                    run_dir=str(run_dir / folder / f"variant_{number}"),
                    config_hash=config_hash(config),
                    code_version=__version__,
                )
            )
    return cells


def _unique(name: str, taken: set[str]) -> str:
    candidate = name
    for number in itertools.count(2):
        if candidate not in taken:
            break
        candidate = f"{name}_{number}"
    taken.add(candidate)
    return candidate


def config_hash(config: Config) -> str:
    """SHA-256 of the resolved config (every path absolute), without where it writes (hydra, mlflow)."""
    data = {key: value for key, value in portable_config(config).items() if key not in ("hydra", "mlflow")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def cell_paths(cell: Cell) -> dict[str, str]:
    """The inputs a cell reads that exist here (what -> absolute path): what a Ray node must see too."""
    paths = {f"config of cell {cell.index}": cell.config}
    with contextlib.suppress(StquantError):
        config = load_config(Path(cell.config), cell.overrides)
        for section, key in PATH_KEYS:
            value = getattr(getattr(config, section), key, None)
            if value:
                paths[f"{section}.{key} of {Path(cell.config).name}"] = str(config.resolve_path(value))
    return {what: path for what, path in paths.items() if Path(path).exists()}


# ------------------------------------------------------------ one cell, in a worker process


def run_cell(cell: Cell, use_cache: bool, trusted: bool = False) -> Cell:
    """Run one cell with the orchestrator in this process; return it with its figures or its failure. `trusted`: as
    `--trust-model` (a worker process does not inherit the driver's choice)."""
    trust_stored_code(trusted)
    run_dir = Path(cell.run_dir)
    started = time.perf_counter()
    if stopping():
        return cell.model_copy(update={"status": "interrupted", "error": INTERRUPTED})
    worker = f"{socket.gethostname()}:{os.getpid()}"
    cell = cell.model_copy(update={"attempts": _earlier_attempts(run_dir) + 1, "status": "pending", "worker": worker})
    try:
        with interruptible():
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / MARKER, cell.model_dump_json(indent=2))
            config = load_config(Path(cell.config), cell.overrides)
            summary: RunSummary | None = run(config, Reporter(), run_dir, overwrite=True, use_cache=use_cache)
        error: BaseException | None = None
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - whatever stops a cell is that cell's outcome
        summary, error = _summary_after(run_dir), exc
    cell = with_figures(cell, summary) if summary is not None else _failed(cell, error)
    cell.seconds = round(time.perf_counter() - started, 3)
    with contextlib.suppress(OSError):
        write_text_atomic(run_dir / MARKER, cell.model_dump_json(indent=2))
    return cell


def _earlier_attempts(run_dir: Path) -> int:
    """Attempts recorded by this sweep (the driver removes the marker of a cell before it submits it)."""
    marker = read_marker(run_dir)
    return marker.attempts if marker is not None and marker.status == "pending" else 0


def _summary_after(run_dir: Path) -> RunSummary | None:
    """The record a failed or interrupted run wrote (None: it stopped before its folder was claimed)."""
    summary = read_summary(run_dir)
    return summary if summary is not None and summary.status != "ok" else None


def _failed(cell: Cell, error: BaseException | None) -> Cell:
    interrupted = isinstance(error, (KeyboardInterrupt, Interrupted))
    message = str(error) if isinstance(error, StquantError) else f"{error.__class__.__name__}: {error}"
    return cell.model_copy(
        update={
            "status": "interrupted" if interrupted else "failed",
            "failed_stage": "config" if isinstance(error, ConfigError) else "run_dir",
            "error": first_line(message),
        }
    )


def with_figures(cell: Cell, summary: RunSummary) -> Cell:
    """`cell` with the outcome and figures of its run's summary (never recomputed)."""
    accuracy, footprint = summary.accuracy, summary.footprint
    fit = footprint.board_fit if footprint else None
    return cell.model_copy(
        update={
            "status": summary.status if summary.status != "running" else "failed",
            "operation_mode": summary.operation_mode,
            "quantized_model": summary.quantized_model,
            "float_accuracy": accuracy.float if accuracy else None,
            "int8_accuracy": accuracy.quantized if accuracy else None,
            "agreement": accuracy.agreement if accuracy else None,
            "weights_flash_kib": footprint.weights_flash_kib if footprint else None,
            "activation_ram_kib": footprint.activation_ram_kib if footprint else None,
            "board": fit.board if fit else None,
            "estimated_inference_ms": footprint.estimated_inference_ms if footprint else None,
            "failed_stage": summary.failed_stage,
            "error": first_line(summary.error) if summary.error else None,
        }
    )


def _hash_of(run_dir: Path) -> str | None:
    """`config_hash` of the config a run folder ran (its config.yaml), None when unreadable."""
    try:
        return config_hash(load_config(run_dir / "config.yaml"))
    except (StquantError, OSError):
        return None


def read_summary(run_dir: Path) -> RunSummary | None:
    try:
        return RunSummary.model_validate_json((run_dir / "run_summary.json").read_bytes())
    except (OSError, ValueError):
        return None


def read_marker(run_dir: Path) -> Cell | None:
    try:
        return Cell.model_validate_json((run_dir / MARKER).read_bytes())
    except (OSError, ValueError):
        return None


def finished(cell: Cell) -> Cell | None:
    """The cell as an earlier sweep finished it (an ok run of the same config, by the same code version), else None.

    The config is the run folder's own config.yaml (a run written there by hand since is not taken for the cell)."""
    run_dir = Path(cell.run_dir)
    marker, summary = read_marker(run_dir), read_summary(run_dir)
    if marker is None or summary is None or summary.status != "ok" or marker.status != "ok":
        return None
    if marker.code_version != cell.code_version or not cell.config_hash or _hash_of(run_dir) != cell.config_hash:
        return None
    reused = with_figures(cell, summary)
    reused.reused, reused.attempts, reused.seconds, reused.worker = True, marker.attempts, marker.seconds, marker.worker
    return reused


# ------------------------------------------------------------ the driver


class SweepJob(Job):
    """The stages of a sweep: reuse what --resume finds, then run the other cells on the executor."""

    def __init__(
        self, record: Sweep, reporter: Reporter, run_dir: Path, executor: str, resume: bool, options: tuple[bool, bool]
    ) -> None:
        """`options`: what every cell is run with, (use_cache, trusted): the arguments of `run_cell` after the cell."""
        super().__init__(reporter, run_dir, record)
        self.sweep, self.executor, self.resume, self.options = record, executor, resume, options
        self._clock = time.perf_counter()
        self._ran = 0  # cells finished by this sweep (for the ETA)
        self._running = 0

    def save(self) -> None:
        """Write `sweep.json` and `sweep.md`."""
        sweep = self.sweep
        sweep.done = sum(cell.status == "ok" for cell in sweep.cells)
        sweep.failed = sum(cell.status == "failed" for cell in sweep.cells)
        sweep.reused = sum(cell.reused for cell in sweep.cells)
        sweep.seconds = round(time.perf_counter() - self._clock, 3)
        write_text_atomic(self.run_dir / "sweep.json", sweep.model_dump_json(indent=2))
        write_text_atomic(self.run_dir / "sweep.md", format_markdown(sweep))

    def announce(self) -> None:
        self.reporter.sweep(self.sweep)

    def execute(self) -> None:
        todo = [cell for cell in self.sweep.cells if cell.status == "pending" and not self._reuse(cell)]
        for cell in self.sweep.cells:
            if cell.status == "failed":  # a config that could not be read
                self.reporter.sweep_cell(cell)
        self.save()
        if todo:
            with self.stage("start_workers"):
                pool = self._pool(todo)
            with self.stage("cells"):
                self._drive(pool, todo)
        self.sweep.status = "ok" if all(cell.status == "ok" for cell in self.sweep.cells) else "failed"

    def _reuse(self, cell: Cell) -> bool:
        reused = finished(cell) if self.resume else None
        if reused is None:
            with contextlib.suppress(OSError):
                (Path(cell.run_dir) / MARKER).unlink(missing_ok=True)
            return False
        self.sweep.cells[cell.index] = reused
        self.reporter.sweep_cell(reused)
        return True

    def _pool(self, todo: list[Cell]) -> Pool:
        if self.executor == "local":
            return LocalPool(run_cell, min(self.sweep.jobs, len(todo)))
        pool = RayPool(run_cell, self.sweep.jobs, self.sweep.address)
        try:
            self.sweep.jobs = pool.slots
            cache = cache_folder()
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"the statistics cache {cache}: cannot create it ({exc.strerror})") from None
            paths = {"the sweep folder": str(self.run_dir), "the statistics cache": str(cache)}
            for cell in todo:
                paths.update(cell_paths(cell))
            pool.check_paths(paths)
        except BaseException:
            pool.close()
            raise
        return pool

    def _drive(self, pool: Pool, todo: list[Cell]) -> None:
        """Submit every cell, record each as it ends; on Ctrl-C stop the workers and keep what finished."""
        pending: dict[Future[Any], Cell] = {}
        try:
            for cell in started_order(todo):
                pending[pool.submit(cell, *self.options)] = cell
            self._progress(len(pending), pool.slots)
            while pending:
                ended, _ = wait(pending, timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
                for future in sorted(ended, key=lambda done: pending[done].index):  # retried in order
                    cell = pending.pop(future)
                    retry = self._ended(future, cell, pool.retries_lost)
                    if retry:
                        pending[pool.submit(cell, *self.options)] = cell
                if ended:
                    self._progress(len(pending), pool.slots)
        except BaseException:
            pool.stop()
            for future, cell in pending.items():
                if future.done() and not future.cancelled():
                    self._stopped(future, cell)
            raise
        pool.close()

    def _stopped(self, future: Future[Any], cell: Cell) -> None:
        """Record a cell that ended while the sweep was stopping (a cancelled Ray task: interrupted)."""
        try:
            self.sweep.cells[cell.index] = future.result()
        except Exception:  # noqa: BLE001 - the worker was stopped with the sweep
            self.sweep.cells[cell.index] = cell.model_copy(update={"status": "interrupted", "error": INTERRUPTED})

    def _ended(self, future: Future[Any], cell: Cell, retry_lost: bool) -> bool:
        """Record the outcome of a cell's future; True when its lost worker should be retried."""
        try:
            result: Cell = future.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker (BrokenProcessPool, a Ray error): the cell's failure
            if retry_lost and cell.attempts == 0:
                log.warning("cell %d: its worker was lost (%s); running it again", cell.index, first_line(exc))
                cell.attempts = 1
                return True
            result = cell.model_copy(
                update={
                    "status": "failed",
                    "attempts": 2,
                    "failed_stage": "worker",
                    "error": f"its worker process was lost twice ({exc.__class__.__name__}: {first_line(exc)})",
                }
            )
        self.sweep.cells[cell.index] = result
        self._ran += 1
        self.reporter.sweep_cell(result)
        self.save()
        return False

    def _progress(self, unfinished: int, slots: int) -> None:
        cells = self.sweep.cells
        done = sum(cell.status == "ok" for cell in cells)
        failed = sum(cell.status == "failed" for cell in cells)
        elapsed = time.perf_counter() - self._clock
        eta = round(elapsed / self._ran * unfinished, 1) if self._ran else None
        self.reporter.sweep_progress(
            SweepProgressEvent(
                total=len(cells), done=done, running=min(unfinished, slots), failed=failed, eta_seconds=eta
            )
        )


def started_order(cells: list[Cell]) -> list[Cell]:
    """Every config's first variant, then every config's second...: the variants of one config, which may share
    statistics through the cache, then seldom run at the same time."""
    taken: dict[str, int] = {}
    ranked: list[tuple[int, int, Cell]] = []
    for cell in cells:
        rank = taken.get(cell.config, 0)
        taken[cell.config] = rank + 1
        ranked.append((rank, cell.index, cell))
    return [cell for _, _, cell in sorted(ranked, key=lambda item: item[:2])]


# ------------------------------------------------------------ the table


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


HEADER = [
    "#",
    "config",
    "variant",
    "float acc %",
    "int8 acc %",
    "agreement %",
    "weights flash KiB",
    "activation RAM KiB",
    "est. ms",
    "board",
    "status",
]


def _rows(sweep: Sweep) -> list[list[str]]:
    rows = [HEADER]
    for cell in sweep.cells:
        status = "reused" if cell.reused else cell.status
        rows.append(
            [
                str(cell.index),
                Path(cell.config).name,
                cell.variant,
                _fmt(cell.float_accuracy),
                _fmt(cell.int8_accuracy),
                _fmt(cell.agreement),
                _fmt(cell.weights_flash_kib),
                _fmt(cell.activation_ram_kib),
                _fmt(cell.estimated_inference_ms),
                cell.board or "",
                status,
            ]
        )
    return rows


def _failures(sweep: Sweep) -> list[str]:
    return [
        f"cell {cell.index} ({Path(cell.config).name}, {cell.variant}) {cell.status} in {cell.failed_stage}: "
        f"{cell.error}"
        for cell in sweep.cells
        if cell.status in ("failed", "interrupted")
    ]


def _outcome(sweep: Sweep) -> str:
    return (
        f"{sweep.done} of {len(sweep.cells)} cells ok ({sweep.reused} reused), {sweep.failed} failed; "
        f"{sweep.executor} executor, {sweep.jobs} at once; {sweep.seconds:.1f} s"
    )


def format_table(sweep: Sweep) -> str:
    """The plain-text table `stquant sweep` prints, then the failed cells and the outcome."""
    rows = _rows(sweep)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.ljust(width) if i in (1, 2, 9, 10) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    return "\n".join([*lines, *_failures(sweep), _outcome(sweep)])


def format_markdown(sweep: Sweep) -> str:
    """`sweep.md`: the table in Markdown, the failed cells, the outcome."""
    rows = _rows(sweep)
    lines = ["# stquant sweep", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(text.replace("|", "\\|") for text in row) + " |" for row in rows[1:]]
    failures = _failures(sweep)
    if failures:
        lines += ["", "## Failed cells", "", *(f"- {line}" for line in failures)]
    return "\n".join([*lines, "", _outcome(sweep), ""])
