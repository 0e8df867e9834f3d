"""`stquant`: the batch command line (validate, run, compare, recover, sweep, inspect, footprint, boards, demo,
schema).

Exit codes: 0 ok, 1 engine failure, 2 invalid config or usage (an --output-dir that would write over an
input included), 3 missing or unreadable input, or an output that cannot be written (disk full, read-only,
a run folder another run is using), 130 interrupted. Expected errors print one line each, never a traceback
(`--debug` shows it). Diagnostics go to stderr; results to stdout (for `run`, its last line is the run folder).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine import __version__
from engine.common.errors import ConfigError, ExitCode, StquantError
from engine.models.files import trust_stored_code

if TYPE_CHECKING:  # imported when a command needs it (a fast `--help` and `validate`)
    from engine.config.schema import Config
    from engine.run.summary import BoardFit, RunSummary

TRUST_HELP = "run Python code stored in the model file (Lambda layers stquant does not recognise, custom layers)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"usage: {message} (see {self.prog} --help)")


FOOTPRINT_DESCRIPTION = (
    "Weights flash, activation RAM (planned after STM32Cube.AI 8.1's placement rules, with an upper bound "
    "where no buffer is written over another, as ST Edge AI Core 4.0.1 does; inputs and outputs inside the "
    "activation buffer), MACC, per-layer table and, with --board, the fit and an estimated inference time (fitted on "
    "ST's published STM32H747I-DISCO times; other cores scaled by STM32Cube.AI's MLPerf Tiny cycle ratios). "
    "These are estimates: their error against ST's published figures is in docs/benchmarks.md "
    "(benchmarks/footprint_vs_cubeai.py). A Keras .h5/.keras model is measured as its float32 TFLite "
    "conversion (TensorFlow needed)."
)


COMPARE_DESCRIPTION = (
    "Every combination of the --vary values is a variant, quantized from one model load, one decode of the "
    "images and one statistics pass. Keys: quantization.granularity, optimize, quantization_input_type, "
    "quantization_output_type, quantizer, calibration_method. Accuracy and agreement on the images stquant run "
    "evaluates on (dataset.test_path, else validation_path, else the validation split of training_path; none: "
    "not measured). Prints a table (also comparison.md and "
    "comparison.json in the comparison folder) and the recommended variant: meeting --target-agreement with "
    "the smallest activation RAM, then flash, then estimated time. The last line is the comparison folder."
)


RECOVER_DESCRIPTION = (
    "Quantize as the config says and measure the drop on the images stquant run evaluates on; while the target is "
    "missed, try the remedies that cost nothing on the board (every quantization.calibration_method, then "
    "bias_correction), then keep the most harmful layers in float one at a time (ranked by how much each "
    "helps alone), within the budget. The result is a normal run folder: the model (run_summary.json's "
    "quantized_model), config.yaml that re-runs it (quantization.float_layers), recovery.json with every "
    "step. Exit 1 when the target is not met: the line names the best reached, what stopped the search and "
    "the best model. The last line is the run folder."
)


SWEEP_DESCRIPTION = (
    "Every config (a folder: its .yaml files) with every combination of the --vary values is a cell: a normal "
    "stquant run folder <sweep folder>/<config name>/variant_<n>, run by the same engine as stquant run (use "
    "chain_eqe or chain_eqeb configs for the accuracy columns). Cells run in worker processes that keep TensorFlow "
    "loaded; a failed cell never stops the sweep, and a worker lost mid-cell is retried once. --executor local: "
    "--jobs processes on this machine; the default is one per CPU core, at most one per 2 GiB of available memory "
    "(the memory a cell reserves). --executor ray: each cell a Ray task reserving 1 CPU and "
    "2 GiB; without --address a local Ray cluster with --jobs CPUs; the configs, models, datasets, the sweep "
    "folder and the statistics cache must be at the same path on every node (checked before submitting). Writes "
    "sweep.json and sweep.md in the sweep folder (one row per cell: float and int8 accuracy, agreement, weights "
    "flash, activation RAM, estimated ms). Exit 1 when a cell failed. The last line is the sweep folder."
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser (for --help/--version) and one parser per command.

    Each command's options and `key.path=value` overrides may come in any order (`parse_intermixed_args`).
    """
    parser = _Parser(prog="stquant", description="Quantize image classifiers for STM32 (ST model zoo YAML).")
    parser.add_argument("--version", action="version", version=f"stquant {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = sub.add_parser("validate", help="check a config file and the files it names")
    validate.add_argument("config", type=Path)
    validate.add_argument("overrides", nargs="*", help="key.path=value")
    validate.add_argument("--trust-model", action="store_true", help=TRUST_HELP)

    run = sub.add_parser("run", help="run the config's operation_mode")
    run.add_argument("config", type=Path, nargs="?")
    run.add_argument("overrides", nargs="*", help="key.path=value")
    run.add_argument("--config-path", type=Path, help="folder of the config (the reference's form)")
    run.add_argument("--config-name", help="file name of the config in --config-path")
    run.add_argument("--output-dir", type=_output_dir, help="run folder (default: hydra.run.dir)")
    run.add_argument("--overwrite", action="store_true", help="allow an --output-dir that holds an earlier run")
    run.add_argument("--progress", choices=("auto", "plain", "jsonl", "none"), default="auto")
    run.add_argument("--trust-model", action="store_true", help=TRUST_HELP)
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="compute calibration statistics even when the statistics cache has them (and do not store them)",
    )

    compare = sub.add_parser(
        "compare",
        help="quantize several variants from one decode and one calibration; recommend one",
        description=COMPARE_DESCRIPTION,
    )
    compare.add_argument("config", type=Path)
    compare.add_argument("overrides", nargs="*", help="key.path=value (applied to every variant)")
    compare.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a quantization key and its values (repeatable; every combination is a variant)",
    )
    compare.add_argument(
        "--target-agreement",
        type=float,
        metavar="PCT",
        help="agreement with the float model a recommended variant must reach (default 99.0)",
    )
    compare.add_argument("--board", help="estimate the inference time on this board (see stquant boards)")
    compare.add_argument("--output-dir", type=_output_dir, help="comparison folder (default: hydra.run.dir)")
    compare.add_argument(
        "--overwrite",
        action="store_true",
        help="allow an --output-dir that holds an earlier run or comparison (its variant folders are removed first)",
    )
    compare.add_argument("--progress", choices=("auto", "plain", "jsonl", "none"), default="auto")
    compare.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    compare.add_argument("--trust-model", action="store_true", help=TRUST_HELP)

    _add_recover(sub)
    _add_sweep(sub)

    inspect = sub.add_parser("inspect", help="describe a model's input and output (fast, no TensorFlow)")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--json", action="store_true")
    inspect.add_argument("--trust-model", action="store_true", help=TRUST_HELP)

    footprint = sub.add_parser(
        "footprint",
        help="flash/RAM/MACC/time of a .tflite or .onnx (float32 for .h5/.keras)",
        description=FOOTPRINT_DESCRIPTION,
    )
    footprint.add_argument("model", type=Path)
    footprint.add_argument(
        "--board", help="say whether it fits this STM32 board and estimate the inference time (see stquant boards)"
    )
    footprint.add_argument("--json", action="store_true")
    footprint.add_argument("--trust-model", action="store_true", help=TRUST_HELP)

    sub.add_parser("boards", help="the STM32 boards known to --board and benchmarking.board")

    demo = sub.add_parser(
        "demo",
        help="write the sample configs and the demo model and images into a new folder",
        description="Copy the bundled sample configs and the demo they run on (a small digits "
        "classifier and its images) into DIR, a new or empty folder. Their paths are "
        "relative to their own folder, so `stquant run DIR/quantization_config.yaml` "
        "works from anywhere.",
    )
    demo.add_argument("dir", type=Path, metavar="DIR")

    schema = sub.add_parser("schema", help="print a JSON Schema")
    schema.add_argument(
        "name",
        choices=("config", "run-summary", "comparison", "recovery", "sweep", "events"),
        help="config: the config file, with each key's description and default (what the wizard's "
        "help lines show); run-summary: run_summary.json and the result event; comparison: "
        "comparison.json and the comparison event; recovery: recovery.json and the recovery event; sweep: "
        "sweep.json and the sweep event; events: every event of --progress jsonl "
        "(docs/protocol.md)",
    )

    commands: dict[str, argparse.ArgumentParser] = dict(sub.choices)
    for command in commands.values():
        command.add_argument("--debug", action="store_true", help="show Python tracebacks")
    return parser, commands


def _add_recover(sub: Any) -> None:
    recover = sub.add_parser(
        "recover",
        help="when int8 loses accuracy, find the cheapest fix (range method, bias correction, float layers)",
        description=RECOVER_DESCRIPTION,
    )
    recover.add_argument("config", type=Path)
    recover.add_argument("overrides", nargs="*", help="key.path=value")
    target = recover.add_mutually_exclusive_group(required=True)
    target.add_argument("--max-drop", type=float, metavar="PT", help="float accuracy minus int8 accuracy, points")
    target.add_argument(
        "--target-agreement", type=float, metavar="PCT", help="top-1 agreement with the float model, percent"
    )
    recover.add_argument("--board", help="the model must fit this board; --max-ms is estimated on it")
    recover.add_argument("--max-ram", type=float, metavar="KIB", help="activation RAM budget, KiB")
    recover.add_argument("--max-flash", type=float, metavar="KIB", help="weights flash budget, KiB")
    recover.add_argument("--max-ms", type=float, metavar="MS", help="estimated inference time budget on --board, ms")
    recover.add_argument("--output-dir", type=_output_dir, help="run folder (default: hydra.run.dir)")
    recover.add_argument("--overwrite", action="store_true", help="allow an --output-dir that holds an earlier run")
    recover.add_argument("--progress", choices=("auto", "plain", "jsonl", "none"), default="auto")
    recover.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    recover.add_argument("--trust-model", action="store_true", help=TRUST_HELP)


def _add_sweep(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep", help="run many configs x variants, on this machine or a Ray cluster", description=SWEEP_DESCRIPTION
    )
    sweep.add_argument("configs", type=Path, nargs="+", metavar="CONFIG_OR_DIR")
    sweep.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a quantization key and its values (repeatable; every combination is a variant of every config)",
    )
    sweep.add_argument("--executor", choices=("local", "ray"), default="local")
    sweep.add_argument("--address", help="a running Ray cluster (default: start a local one)")
    sweep.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="cells at once (default: one per CPU core, at most one per 2 GiB of available memory); with "
        "--executor ray and no --address: the CPUs of the local Ray cluster",
    )
    sweep.add_argument("--board", help="estimate the inference time on this board (sets benchmarking.board)")
    sweep.add_argument(
        "--output-dir", type=_output_dir, help="sweep folder (default: experiments_outputs/sweep_<date>)"
    )
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="finish the sweep in --output-dir: skip cells already run ok with the same config and stquant version",
    )
    sweep.add_argument("--progress", choices=("auto", "plain", "jsonl", "none"), default="auto")
    sweep.add_argument("--no-cache", action="store_true", help="do not read or write the statistics cache")
    sweep.add_argument("--trust-model", action="store_true", help=TRUST_HELP)


def _output_dir(text: str) -> Path:
    """--output-dir: a folder name; "" is refused (exit 2) rather than read as the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError('an empty folder name; name the run folder ("." for this one)')
    return Path(text)


_PARSERS = threading.local()


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """This thread's parsers, built once: parsing sets and restores state on them, so threads never share one."""
    if not hasattr(_PARSERS, "built"):
        _PARSERS.built = build_parser()
    built: tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]] = _PARSERS.built
    return built


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; a command's options may follow or precede its positional arguments."""
    parser, commands = _parsers()
    index = next((i for i, arg in enumerate(argv) if arg in commands), None)
    if index is None or any(arg != "--debug" for arg in argv[:index]):
        return parser.parse_args(argv)  # --help, --version or a usage error
    args = commands[argv[index]].parse_intermixed_args(argv[index + 1 :])
    args.command, args.debug = argv[index], args.debug or index > 0
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    _quiet_native_logs()
    progress = _progress_mode(argv)
    commands = {
        "validate": _validate,
        "run": _run,
        "compare": _compare,
        "recover": _recover,
        "sweep": _sweep,
        "inspect": _inspect,
        "footprint": _footprint,
        "boards": _boards,
        "demo": _demo,
        "schema": _schema,
    }
    try:
        args = parse_args(argv)
        trust_stored_code(getattr(args, "trust_model", False))
        return commands[args.command](args)
    except StquantError as exc:
        return _fail(str(exc), exc.exit_code, progress, debug)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.INTERRUPTED, progress, debug)
    except BrokenPipeError:  # the reader went away (`stquant footprint M | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - an engine bug or a library failure: still one line unless --debug
        return _fail(f"engine failure: {exc.__class__.__name__}: {exc}", ExitCode.FAILURE, progress, debug)


def entry() -> None:
    """Console-script entry: run `main`, then exit without TensorFlow's slow interpreter teardown.

    Every file is written and closed by then; skipping the teardown saves seconds per run. A signal that
    arrives once the command is over is ignored (its outcome is already written; no teardown noise).
    `TF_USE_LEGACY_KERAS=1`: `import tensorflow` then preloads tf_keras, not Keras 3 (see engine.models.load).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    code = main()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail(message: str, code: int, progress: str, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    if progress == "jsonl":
        from engine.run.protocol import ErrorEvent, wire

        print(wire(ErrorEvent(message=message, exit_code=int(code))), flush=True)
    for line in message.splitlines():
        print(f"stquant: {line}", file=sys.stderr)
    return int(code)


def _progress_mode(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--progress="):
            return arg.split("=", 1)[1]
        if arg == "--progress" and i + 1 < len(argv):
            return argv[i + 1]
    return "auto"


def _quiet_native_logs() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _load(config_path: Path, overrides: list[str]) -> Config:
    from engine.config.schema import load_config

    return load_config(config_path, overrides)


def _validate(args: argparse.Namespace) -> int:
    from engine.config.schema import check_file
    from engine.run.preflight import input_problems, prepare

    config, problems = check_file(args.config, args.overrides)
    if problems:  # with the files it names, when the rest of the config can be read
        keys = {problem.key for problem in problems}
        later = [
            exc
            for exc in (input_problems(config) if config is not None else [])
            if str(exc).partition(":")[0] not in keys
        ]
        raise ConfigError([*problems, *later])
    assert config is not None  # check_file gives a config when it finds no problem
    plan = prepare(config)
    for warning in dict.fromkeys(plan.warnings):
        print(f"stquant: warning: {warning}", file=sys.stderr)
    classes = f", {len(plan.class_names)} classes" if plan.class_names else ""
    print(f"{args.config}: ok (operation_mode {config.operation_mode}, model {plan.model_path.name}{classes})")
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    from engine.run.events import make_reporter
    from engine.run.orchestrator import run

    config_path = args.config
    if args.config_path or args.config_name:
        if config_path is not None:
            args.overrides.insert(0, str(config_path))
        config_path = (args.config_path or Path(".")) / (args.config_name or "user_config.yaml")
    if config_path is None:
        raise ConfigError("usage: stquant run CONFIG [key.path=value ...] (or --config-path DIR --config-name FILE)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    config = _load(config_path, args.overrides)
    summary = run(config, make_reporter(args.progress), args.output_dir, args.overwrite, use_cache=not args.no_cache)
    if args.progress != "jsonl":
        print(format_summary(summary))
    print(summary.run_dir, flush=True)
    return ExitCode.OK


def _compare(args: argparse.Namespace) -> int:
    from engine.run.compare import compare, format_table
    from engine.run.events import make_reporter

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    comparison = compare(
        args.config,
        args.overrides,
        args.vary,
        make_reporter(args.progress),
        args.output_dir,
        args.target_agreement,
        args.board,
        use_cache=not args.no_cache,
        overwrite=args.overwrite,
    )
    if args.progress != "jsonl":
        print(format_table(comparison))
    print(comparison.run_dir, flush=True)
    return ExitCode.OK


def _recover(args: argparse.Namespace) -> int:
    from engine.run.events import make_reporter
    from engine.run.recover import recover, target_and_budget

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    target, budget = target_and_budget(
        args.max_drop, args.target_agreement, args.board, args.max_ram, args.max_flash, args.max_ms
    )
    recovery = recover(
        args.config,
        args.overrides,
        target,
        budget,
        make_reporter(args.progress),
        args.output_dir,
        use_cache=not args.no_cache,
        overwrite=args.overwrite,
    )
    if args.progress != "jsonl":
        print(recovery.outcome)
    print(recovery.run_dir, flush=True)
    return ExitCode.OK


def _sweep(args: argparse.Namespace) -> int:
    from engine.run.events import make_reporter
    from engine.run.executors import default_jobs
    from engine.run.sweep import format_table, sweep

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    record = sweep(
        args.configs,
        args.vary,
        make_reporter(args.progress),
        executor=args.executor,
        jobs=default_jobs() if args.jobs is None else args.jobs,
        address=args.address,
        output_dir=args.output_dir,
        resume=args.resume,
        board=args.board,
        use_cache=not args.no_cache,
        trusted=args.trust_model,
    )
    if args.progress != "jsonl":
        print(format_table(record))
    if record.failed:
        print(f"stquant: {record.failed} of {len(record.cells)} cells failed (see sweep.md)", file=sys.stderr)
    print(record.run_dir, flush=True)
    return ExitCode.FAILURE if record.failed else ExitCode.OK


def _inspect(args: argparse.Namespace) -> int:
    from engine.models.info import describe_model

    info = describe_model(args.model).to_dict()
    if args.json:
        print(json.dumps(info))
    else:
        lambdas = info.pop("lambda_layers", None) or []
        for key, value in info.items():
            print(f"{key:14} {value}")
        for item in lambdas:
            found = f"recognised as {item['as']}" if item["recognised"] else f"NOT recognised ({item['reason']})"
            print(f"{'lambda':14} {item['name']}: {found}")
    return ExitCode.OK


def _footprint(args: argparse.Namespace) -> int:
    from engine.footprint import estimate_footprint
    from engine.footprint.boards import board_fit, find_board, unknown_board
    from engine.run.summary import BoardFit

    if args.board and find_board(args.board) is None:
        raise unknown_board(args.board, "--board")
    footprint = estimate_footprint(args.model, board=args.board)
    fit = board_fit(args.board, footprint) if args.board else None
    if args.json:
        print(json.dumps({**footprint.to_dict(), "board_fit": fit}))
    else:
        print(footprint.format_table())
        if fit:
            print(_board_line(BoardFit(**fit)))
    return ExitCode.OK


def _boards(args: argparse.Namespace) -> int:
    from engine.footprint.boards import boards_table

    print(boards_table())
    return ExitCode.OK


def _demo(args: argparse.Namespace) -> int:
    from engine.demo import QUICK_START, write_demo

    for config in write_demo(args.dir):
        print(config)
    print(f"stquant demo: written to {args.dir}; try: stquant run {args.dir / QUICK_START}", file=sys.stderr)
    return ExitCode.OK


def _schema(args: argparse.Namespace) -> int:
    from engine.config.schema import Config
    from engine.run.comparison import comparison_schema
    from engine.run.protocol import events_schema
    from engine.run.recovery import recovery_schema
    from engine.run.summary import run_summary_schema
    from engine.run.sweep_record import sweep_schema

    schemas = {
        "config": Config.model_json_schema,
        "run-summary": run_summary_schema,
        "comparison": comparison_schema,
        "recovery": recovery_schema,
        "sweep": sweep_schema,
        "events": events_schema,
    }
    print(json.dumps(schemas[args.name](), indent=2))
    return ExitCode.OK


def _board_line(fit: BoardFit) -> str:
    def verdict(ok: bool) -> str:
        return "fit" if ok else "do NOT fit"

    line = (
        f"{fit.board}: {fit.verdict}; weights {verdict(fit.weights_fit)} in {fit.flash_kib:.0f} KiB flash, "
        f"activations {verdict(fit.activations_fit)} in {fit.ram_kib:.0f} KiB RAM"
        f" (headroom {fit.flash_headroom_kib:.2f} KiB / {fit.flash_headroom_pct:.1f} % flash, "
        f"{fit.ram_headroom_kib:.2f} KiB / {fit.ram_headroom_pct:.1f} % RAM"
        + (
            f", upper bound {fit.ram_upper_headroom_kib:.2f} KiB / {fit.ram_upper_headroom_pct:.1f} %"
            if fit.ram_upper_headroom_kib is not None and fit.ram_upper_headroom_pct is not None
            else ""
        )
        + ")"
    )
    if fit.estimated_inference_ms is not None:
        line += f"; estimated {fit.estimated_inference_ms:.2f} ms at {fit.mhz} MHz ({fit.core})"
    return line


def format_summary(summary: RunSummary) -> str:
    """The compact before/after table printed at the end of `stquant run`."""
    rows = [("", "float", "quantized")]
    accuracy, footprint = summary.accuracy, summary.footprint
    if accuracy:
        rows.append(("top-1 accuracy %", _fmt(accuracy.float), _fmt(accuracy.quantized)))
        if accuracy.agreement is not None:
            rows.append(("top-1 agreement %", "", _fmt(accuracy.agreement)))
    if footprint:
        rows.append(("weights flash KiB", _fmt(footprint.float_weights_kib), _fmt(footprint.weights_flash_kib)))
        rows.append(
            ("activation RAM KiB", _fmt(footprint.float_activation_ram_kib), _fmt(footprint.activation_ram_kib))
        )
        if footprint.activation_ram_upper_kib is not None:
            rows.append(("  upper bound KiB", "", _fmt(footprint.activation_ram_upper_kib)))
        rows.append(("MACC (M)", "", _fmt(footprint.macc / 1e6, 3)))
    lines = [f"status: {summary.status}"]
    if summary.quantized_model:
        lines.append(f"quantized model: {summary.quantized_model}")
    calibration = summary.calibration
    if calibration:
        lines.append(
            f"calibration: {calibration.images} images from {calibration.source}, {calibration.skipped} skipped"
            f"{', statistics from the cache' if calibration.statistics == 'cache' else ''}"
            f"{', quantized model from the cache' if calibration.quantized_model == 'cache' else ''}"
        )
    if len(rows) > 1:
        lines += [f"{a:<20}{b:>12}{c:>12}" for a, b, c in rows]
    if footprint and footprint.board_fit:
        lines.append(_board_line(footprint.board_fit))
    worst = [row for row in summary.layer_errors or [] if row.sqnr_db is not None][:5]
    if worst:
        lines.append("worst layers (SQNR dB): " + ", ".join(f"{row.layer} {row.sqnr_db:.1f}" for row in worst))
    lines += [f"warning ({warning.stage}): {warning.message}" for warning in summary.warnings]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"
