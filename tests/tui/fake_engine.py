"""A stand-in for `python -m engine` that speaks the CLI protocol without TensorFlow (TUI tests only).

inspect MODEL --json   -> fixed JSON (exit 3 if MODEL is missing)
validate CONFIG        -> engine.config.load_config
run CONFIG ... --progress jsonl
                       -> stage/progress/log events, then a result (or, with FAKE_ENGINE_SLOW=1, a slow
                          calibration that SIGINT interrupts: status interrupted, exit 130, no model)
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

SUMMARY = {
    "status": "ok", "operation_mode": "quantization", "run_dir": "RUN_DIR",
    "quantized_model": "RUN_DIR/quantized_models/digits_cnn_int8.tflite",
    "calibration": {"source": "dataset.quantization_path", "images": 300, "skipped": 1},
    "timings": {"load_model": 0.8, "calibration": 2.5, "quantization": 1.2, "footprint": 0.1},
    "accuracy": {"float": 0.97, "quantized": 0.963, "agreement": 0.99, "per_class": {}, "runtime": "tflite"},
    "footprint": {
        "weights_flash_kib": 14.2, "activation_ram_kib": 18.0, "macc": 412160, "params": 13450,
        "float_weights_kib": 52.5, "float_activation_ram_kib": 64.0, "board_fit": None,
        "layers": [
            {"op": "CONV_2D", "name": "conv2d", "output_shape": [1, 16, 16, 16], "macc": 110592,
             "weight_bytes": 496, "activation_bytes": 4096},
            {"op": "DEPTHWISE_CONV_2D", "name": "dw1", "output_shape": [1, 16, 16, 16], "macc": 36864,
             "weight_bytes": 208, "activation_bytes": 4096},
            {"op": "FULLY_CONNECTED", "name": "dense", "output_shape": [1, 10], "macc": 640,
             "weight_bytes": 680, "activation_bytes": 10},
        ],
    },
    "layer_errors": [{"layer": "dense", "op": "FULLY_CONNECTED", "sqnr_db": 21.4},
                     {"layer": "conv2d", "op": "CONV_2D", "sqnr_db": 33.9}],
}


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
    for done in range(0, total + 1, 30):
        if stop:
            summary = dict(SUMMARY, status="interrupted", quantized_model=None, run_dir=str(out))
            emit(event="error", message="interrupted by the user", exit_code=130)
            (out / "run_summary.json").write_text(json.dumps(summary))
            print(out, flush=True)
            return 130
        emit(event="progress", stage="calibration", done=done, total=total)
        time.sleep(0.5 if slow else 0.01)
    emit(event="stage", name="quantization")
    model = out / "quantized_models" / "digits_cnn_int8.tflite"
    model.parent.mkdir(exist_ok=True)
    model.write_bytes(b"TFL3")
    emit(event="stage", name="footprint")
    summary = json.loads(json.dumps(SUMMARY).replace("RUN_DIR", str(out)))
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
        print(json.dumps({"format": "h5", "input_name": "input_1", "input_shape": [None, 32, 32, 3],
                          "layout": "NHWC", "dtype": "float32", "height": 32, "width": 32, "channels": 3,
                          "output_width": int(os.environ.get("FAKE_ENGINE_OUTPUTS", "10")),
                          "quantized": False}))
        return 0
    if command == "validate":
        from engine.config import load_config
        from engine.errors import StquantError
        try:
            load_config(rest[0])
        except StquantError as exc:
            print(exc, file=sys.stderr)
            return int(exc.exit_code)
        return 0
    if command == "run":
        return run(rest)
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
