"""A stand-in for `python -m engine` that speaks the CLI protocol without TensorFlow (TUI tests only).

inspect MODEL --json   -> fixed JSON (exit 3 if MODEL is missing)
validate CONFIG        -> the real `stquant validate` (it needs no TensorFlow)
run CONFIG ... --progress jsonl
                       -> stage/progress/log events, then a result that replays a real run's summary
                          (or, with FAKE_ENGINE_SLOW=1, a slow calibration that SIGINT interrupts:
                          a result with status interrupted, exit 130, no model; with FAKE_ENGINE_FAIL=message,
                          the CLI's failure: an error event, its stderr line, exit 3)
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# `run_summary.json` of a real `stquant run sample_configs/chain_eqeb_config.yaml quantization.granularity=per_tensor`
# (its run folder and the repository folder replaced by RUN_DIR and ROOT).
RECORDED = HERE / "recorded_run_summary.json"


def recorded_summary(run_dir: Path | str) -> dict:
    """The recorded summary, as if the run had written it in `run_dir`, checked by the engine's own model."""
    from engine.run.summary import RunSummary

    text = RECORDED.read_text().replace("RUN_DIR", str(run_dir)).replace("ROOT", str(HERE.parents[1]))
    return RunSummary.model_validate_json(text).model_dump(mode="json")


def emit(**event):
    print(json.dumps(event), flush=True)


def run(argv):
    out = Path(os.environ.get("FAKE_ENGINE_RUN_DIR", "fake_run"))
    out.mkdir(parents=True, exist_ok=True)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    emit(event="stage", name="load_model")
    emit(event="log", level="INFO", message=f"config {argv[0]}")
    print("some TensorFlow noise on stderr", file=sys.stderr, flush=True)
    emit(event="stage", name="calibration")
    total, slow = 300, os.environ.get("FAKE_ENGINE_SLOW") == "1"
    if os.environ.get("FAKE_ENGINE_FAIL"):  # as the CLI fails: an error event, its stderr line, its exit code
        message = os.environ["FAKE_ENGINE_FAIL"]
        emit(event="error", message=message, exit_code=3)
        print(f"stquant: {message}", file=sys.stderr, flush=True)
        return 3
    summary = recorded_summary(out)
    for done in range(0, total + 1, 30):
        if stop:
            summary.update(
                status="interrupted",
                failed_stage="calibration",
                quantized_model=None,
                accuracy=None,
                footprint=None,
                layer_errors=None,
                error="interrupted: no partial model was kept",
            )
            (out / "run_summary.json").write_text(json.dumps(summary))
            emit(event="result", summary=summary)
            emit(event="error", message="interrupted by the user", exit_code=130)
            print(out, flush=True)
            return 130
        emit(event="progress", stage="calibration", done=done, total=total)
        step_ends = time.monotonic() + (2.0 if slow else 0.01)  # slow: a test's keys land long before it ends
        while time.monotonic() < step_ends and not stop:
            time.sleep(0.01)
    emit(event="stage", name="quantization")
    model = Path(summary["quantized_model"])
    model.parent.mkdir(exist_ok=True)
    model.write_bytes(b"TFL3")
    emit(event="stage", name="footprint")
    (out / "run_summary.json").write_text(json.dumps(summary))
    emit(event="result", summary=summary)
    print(out, flush=True)
    return 0


def main(argv):
    command, rest = argv[0], argv[1:]
    if command == "inspect":
        if not Path(rest[0]).exists():
            print(f"{rest[0]}: model file not found", file=sys.stderr)
            return 3
        print(
            json.dumps(
                {
                    "format": "h5",
                    "input_name": "input_1",
                    "input_shape": [None, 32, 32, 3],
                    "layout": "NHWC",
                    "dtype": "float32",
                    "height": 32,
                    "width": 32,
                    "channels": 3,
                    "output_width": int(os.environ.get("FAKE_ENGINE_OUTPUTS", "10")),
                    "quantized": False,
                }
            )
        )
        return 0
    if command == "validate":
        from engine.cli import main as stquant

        return stquant(argv)
    if command == "run":
        return run(rest)
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
