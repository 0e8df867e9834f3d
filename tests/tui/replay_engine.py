"""A stand-in for `python -m engine compare ...` that replays a real comparison's JSON lines (TUI tests only).

`recorded_compare.jsonl` is the stdout of a real run (2026-11-30) of

    stquant compare mobilenet_v2_0.35_128_fft_config.yaml general.model_path=.../mobilenet_v2_0.35_128_fft.h5 \
        operation_mode=quantization dataset.training_path=null dataset.quantization_path=.../flower_photos \
        dataset.quantization_split=0.4 --vary quantization.granularity=per_channel,per_tensor \
        --vary quantization.quantization_input_type=uint8,int8 --board STM32H747I-DISCO --target-agreement 98 \
        --progress jsonl

with its folders replaced by RUN_DIR, CACHE_DIR and ASSETS. The replay puts `$REPLAY_RUN_DIR` for RUN_DIR
and writes its own arguments to `$REPLAY_ARGV` (JSON), so tests can check what the screen asked for.

`recover CONFIG ...` replays `recorded_recover.jsonl` instead, the stdout of a real run (2026-12-06) of

    stquant recover sample_configs/chain_eqe_config.yaml quantization.granularity=per_tensor \
        --target-agreement 100 --board STM32H747I-DISCO --progress jsonl

(target not met: exit 1; the repository folder replaced by ROOT), and copies CONFIG to `$REPLAY_CONFIG`.
"""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "recorded_compare.jsonl"
RECORDED_RECOVERY = HERE / "recorded_recover.jsonl"
RECOVER_EXIT = 1  # the recorded search did not meet its target
REPLAY_ENGINE = [sys.executable, str(Path(__file__).resolve())]
TUTORIAL_CONFIG = """\
general:
  model_path: models/mobilenet_v2_0.35_128_fft.h5
operation_mode: quantization
dataset:
  class_names: [daisy, dandelion, roses, sunflowers, tulips]
  quantization_path: datasets/flower_photos
  quantization_split: 0.4
preprocessing:
  rescaling: {scale: 1/127.5, offset: -1}
  resizing: {interpolation: nearest, aspect_ratio: fit}
  color_mode: rgb
quantization:
  quantizer: TFlite_converter
  quantization_type: PTQ
  quantization_input_type: uint8
  quantization_output_type: float
  export_dir: quantized_models
benchmarking:
  board: STM32H747I-DISCO
"""


def recorded_lines(run_dir: str) -> list[str]:
    """The recorded stdout lines, as if the comparison folder were `run_dir`."""
    return RECORDED.read_text().replace("RUN_DIR", run_dir).splitlines()


def recorded_comparison(run_dir: str) -> dict:
    """The recorded `comparison` event's comparison (what comparison.json held)."""
    events = [json.loads(line) for line in recorded_lines(run_dir) if line.startswith("{")]
    return next(e["comparison"] for e in events if e["event"] == "comparison")


def recorded_recovery_lines(run_dir: str) -> list[str]:
    """The recorded recovery's stdout lines, as if its run folder were `run_dir`."""
    root = str(HERE.parents[1])
    return RECORDED_RECOVERY.read_text().replace("RUN_DIR", run_dir).replace("ROOT", root).splitlines()


def main(argv: list[str]) -> int:
    if os.environ.get("REPLAY_ARGV"):
        Path(os.environ["REPLAY_ARGV"]).write_text(json.dumps(argv))
    if argv[0] == "recover":
        if os.environ.get("REPLAY_CONFIG"):
            Path(os.environ["REPLAY_CONFIG"]).write_text(Path(argv[1]).read_text())
        for line in recorded_recovery_lines(os.environ.get("REPLAY_RUN_DIR", "/runs/recover")):
            print(line, flush=True)
        return RECOVER_EXIT
    for line in recorded_lines(os.environ.get("REPLAY_RUN_DIR", "/runs/compare")):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
