"""Seeded model-and-dataset fuzzer (issue 19): odd ONNX / Keras inputs and odd dataset files through `stquant
validate` (and `footprint` for the models), in-process. Every outcome is exit 0, 2 or 3 with one line per message:
never a traceback, an engine failure or a hang. Decoding the odd datasets skips each bad file, naming it."""

from __future__ import annotations

import contextlib
import io
import logging
import random
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
import yaml
from onnx import TensorProto
from PIL import Image

from engine.cli import main
from engine.data.dataset import scan
from engine.data.images import decode_all
from engine.data.preprocess import ImageSpec
from engine.models.info import describe_model, image_input_problem
from tests.conftest import DEMO, ROOT
from tests.odd_models import keras_h5, onnx_classifier

SEED = 19
ONNX_CASES, KERAS_CASES, DATASET_CASES = 150, 75, 50
ONNX_SAMPLE = ROOT / "sample_configs" / "quantization_onnx_config.yaml"
KERAS_SAMPLE = ROOT / "sample_configs" / "quantization_config.yaml"
ELEM_TYPES = [TensorProto.FLOAT] * 6 + [
    TensorProto.UINT8,
    TensorProto.INT8,
    TensorProto.FLOAT16,
    TensorProto.DOUBLE,
    TensorProto.INT64,
    TensorProto.BFLOAT16,
]


def stquant(*args: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue().splitlines()


def check_outcome(code: int, lines: list[str], case: str) -> None:
    """Exit 0 with warning lines only, or 2/3 with exactly one line; no traceback or engine failure anywhere."""
    assert code in (0, 2, 3), (case, code, lines)
    assert not any("Traceback" in line or "engine failure" in line for line in lines), (case, lines)
    assert all(line.startswith("stquant: ") for line in lines), (case, lines)
    if code:
        assert len(lines) == 1, (case, lines)
    else:
        assert all(line.startswith("stquant: warning: ") for line in lines), (case, lines)


def odd_dim(rng: random.Random) -> int | str | None:
    return rng.choice([1, 3, 4, 8, 16, 32, 64, 0, -1, None, "H", 100_000, 3, 32])


def onnx_case(rng: random.Random, folder: Path) -> Path:
    rank = rng.choice([2, 3, 4, 4, 4, 4, 5])
    dims = [rng.choice([1, "N", None])] + [odd_dim(rng) for _ in range(rank - 1)]
    if rank == 4 and rng.random() < 0.4:  # a plausible image input, so that some cases get through
        dims = [rng.choice([1, "N"]), 3, rng.choice([8, 32]), rng.choice([8, 32])]
    return onnx_classifier(
        folder / "model.onnx",
        dims,
        elem_type=rng.choice(ELEM_TYPES),
        extra_inputs=int(rng.random() < 0.1),
        output_dims=rng.choice([None, None, ["N", 10, 1, 1]]),
    )


def keras_case(rng: random.Random, folder: Path) -> Path:
    rank = rng.choice([2, 3, 4, 4, 4, 5])
    shape = [None] + [odd_dim(rng) if rng.random() < 0.5 else rng.choice([32, 3]) for _ in range(rank - 1)]
    shape = [
        rng.choice([None, d, 2.5]) if isinstance(d, str) else d for d in shape
    ]  # a stored config may hold anything
    return keras_h5(
        folder / "odd.h5",
        shape,
        dtype=rng.choice(["float32", "float32", "uint8", "float16"]),
        inputs=1 + int(rng.random() < 0.15),
    )


def test_fuzz_odd_models(tmp_path, capsys):
    rng, outcomes, started = random.Random(SEED), Counter(), time.monotonic()
    for index in range(ONNX_CASES + KERAS_CASES):
        folder = tmp_path / f"m{index}"
        folder.mkdir()
        is_onnx = index < ONNX_CASES
        path = onnx_case(rng, folder) if is_onnx else keras_case(rng, folder)
        case = f"case {index}: {describe_model(path).input_shape} {describe_model(path).input_dtype}"
        refused = image_input_problem(describe_model(path)) is not None
        code, lines = stquant("validate", str(ONNX_SAMPLE if is_onnx else KERAS_SAMPLE), f"general.model_path={path}")
        check_outcome(code, lines, case)
        if refused:
            assert code == 2 and lines[0].startswith(f"stquant: {path.name}: "), (case, lines)
        outcomes["validate", int(code)] += 1
        if is_onnx or refused:  # an accepted Keras stand-in holds no weights: only a real model has a footprint
            code, lines = stquant("footprint", str(path))
            check_outcome(code, lines, case)
            assert code == (2 if refused else 0), (case, lines)
            outcomes["footprint", int(code)] += 1
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nmodel fuzzer: {ONNX_CASES} ONNX + {KERAS_CASES} Keras cases in {elapsed:.1f} s, outcomes "
            f"{dict(sorted(outcomes.items()))}"
        )
    assert outcomes["validate", 0] and outcomes["validate", 2] and outcomes["footprint", 0]


def huge_png_header(path: Path) -> None:
    """A PNG that declares 100000 x 100000 pixels and holds none."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)


def truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 200, 30)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])


ODD_FILES = {  # name -> (writer, decodes)
    "empty.png": (lambda p: p.write_bytes(b""), False),
    "zero.jpg": (lambda p: p.touch(), False),
    "cut.jpg": (truncated_jpeg, False),
    "huge.png": (huge_png_header, False),
    "text.jpg": (lambda p: p.write_text("not an image\n"), False),
    "strip.png": (lambda p: Image.new("RGB", (1, 10_000)).save(p), False),
    "ü猫 space.png": (lambda p: Image.new("RGB", (9, 7)).save(p), True),
    "-dash.PNG": (lambda p: Image.new("L", (5, 5)).save(p), True),
    "x" * 200 + ".gif": (lambda p: Image.new("P", (6, 6)).save(p), True),
    "line\nbreak.png": (lambda p: Image.new("RGB", (8, 8)).save(p), True),
    "cmyk.jpg": (lambda p: Image.new("CMYK", (8, 8)).save(p), True),
    "anim.tif": (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), None),  # not an image suffix: skipped
}
ODD_FOLDERS = ["ünïcode", "with space", "odd\nfolder", "-dash", "x" * 200]


def test_fuzz_odd_datasets(tmp_path, caplog, capsys):
    rng, outcomes, started = random.Random(SEED), Counter(), time.monotonic()
    spec = ImageSpec(32, 32, 3, "bilinear", "crop")
    for index in range(DATASET_CASES):
        root = tmp_path / f"d{index}"
        good = 10
        for k in range(10):
            (root / f"digit_{k}").mkdir(parents=True)
            Image.new("RGB", (12, 10), (k, 9, 9)).save(root / f"digit_{k}" / "a.png")
        for name in rng.sample(sorted(ODD_FILES), rng.randint(1, 5)):
            write, decodes = ODD_FILES[name]
            write(root / f"digit_{rng.randrange(10)}" / name)
            good += bool(decodes)
        for name in rng.sample(ODD_FOLDERS, rng.randint(0, 2)):
            (root / name).mkdir()
        without_names = rng.random() < 0.3
        config = _config(tmp_path / f"c{index}.yaml", root, without_names)
        code, lines = stquant("validate", str(config))
        check_outcome(code, lines, f"dataset {index}")
        outcomes["validate", int(code)] += 1
        extra = [name for name in ODD_FOLDERS if (root / name).exists()]
        if without_names and "odd\nfolder" in extra:
            assert code == 2 and "'odd\\nfolder'" in lines[0] and "line break" in lines[0], lines
        elif without_names and extra:  # the extra folders are classes the 10-score model lacks
            assert code == 2 and f"{10 + len(extra)} classes" in lines[0], lines
        else:
            assert code == 0, lines
        found = scan(root, [f"digit_{k}" for k in range(10)], "dataset.quantization_path")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="engine.data.images"):
            _, kept = decode_all(found.files, spec)
        skipped = {r.getMessage() for r in caplog.records}
        assert len(kept) == good and len(skipped) == len(found.files) - good, (index, skipped)
        assert all(msg.startswith("skipped unreadable image ") for msg in skipped)
        outcomes["decoded", len(found.files) - good] += 1
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\ndataset fuzzer: {DATASET_CASES} datasets in {elapsed:.1f} s, outcomes (decoded: skipped files per "
            f"dataset) {dict(sorted(outcomes.items()))}"
        )


def _config(path: Path, root: Path, without_names: bool) -> Path:
    config = yaml.safe_load(KERAS_SAMPLE.read_text())
    config["general"]["model_path"] = str(DEMO / "digits_cnn.h5")
    config["dataset"]["quantization_path"] = str(root)
    if without_names:
        del config["dataset"]["class_names"]
    path.write_text(yaml.safe_dump(config))
    return path


pytestmark = pytest.mark.timeout(120)
