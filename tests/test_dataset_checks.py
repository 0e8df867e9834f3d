"""Datasets the checks let through (issue 19): an image whose resizing would exhaust memory, class names with line
breaks or without Latin glyphs, thousands of empty folders, and the image / model suffix lists the wizard shares
with the engine."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from engine.cli import main
from engine.data.dataset import IMAGE_EXTENSIONS, scan
from engine.data.images import decode_all
from engine.data.preprocess import ImageSpec
from engine.evaluation.accuracy import _result, class_labels, draws, label_font, save_confusion_png
from engine.models.files import FORMATS
from stquant_tui.engine_client import IMAGE_SUFFIXES, scan_class_folders
from stquant_tui.widgets.dialogs import MODEL_SUFFIXES
from tests.conftest import DEMO, ROOT

SAMPLE = ROOT / "sample_configs" / "quantization_config.yaml"


def validate(config: Path, *overrides: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["validate", str(config), *overrides])
    return code, err.getvalue().splitlines()


def digits(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (len(name), 0, 0)).save(root / name / "a.png")
    return root


def config_without_class_names(tmp_path: Path, data: Path) -> Path:
    config = yaml.safe_load(SAMPLE.read_text())
    del config["dataset"]["class_names"]
    config["general"]["model_path"] = str(DEMO / "digits_cnn.h5")
    config["dataset"]["quantization_path"] = str(data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("aspect_ratio", "interpolation"), [("crop", "bilinear"), ("crop", "nearest"), ("fit", "bicubic")]
)
def test_an_image_too_long_to_resize_is_skipped_and_named(tmp_path, caplog, aspect_ratio, interpolation):
    strip, square = tmp_path / "strip.png", tmp_path / "square.png"
    Image.new("RGB", (1, 10_000) if aspect_ratio == "crop" else (1, 3_000_000)).save(strip)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(square)
    spec = ImageSpec(224, 224, 3, interpolation, aspect_ratio)
    with caplog.at_level(logging.WARNING, logger="engine.data.images"):
        images, kept = decode_all([strip, square], spec)
    assert kept == [1] and images.shape == (1, 224, 224, 3)
    [record] = caplog.records
    assert record.getMessage().startswith(f"skipped unreadable image {strip} (resizing 1x")
    assert "GiB, over the 2 GiB bound" in record.getMessage()


def test_class_folder_with_a_line_break_is_refused_at_scan(tmp_path):
    data = digits(tmp_path / "data", [f"digit_{k}" for k in range(9)] + ["digit\n9"])
    code, lines = validate(config_without_class_names(tmp_path, data))
    assert code == 2 and lines == [
        f"stquant: dataset.quantization_path: class folder 'digit\\n9' in {data} has a "
        "line break or control character in its name; rename the folder"
    ], lines


def test_an_ignored_folder_with_a_line_break_is_named_on_one_line(tmp_path):
    data = digits(tmp_path / "data", [f"digit_{k}" for k in range(10)] + ["odd\nname"])
    code, lines = validate(SAMPLE, f"dataset.quantization_path={data}")
    assert code == 0 and lines == [
        "stquant: warning: dataset.quantization_path: folders not in dataset.class_names, ignored: 'odd\\nname'"
    ], lines


def test_ten_thousand_empty_folders_are_counted_not_listed(tmp_path):
    data = digits(tmp_path / "data", [f"digit_{k}" for k in range(10)])
    for i in range(10_000):
        (data / f"empty_{i:05d}").mkdir()
    code, lines = validate(SAMPLE, f"dataset.quantization_path={data}")
    assert code == 0 and lines == [
        "stquant: warning: dataset.quantization_path: folders not in dataset.class_names, "
        "ignored: 10000 folders (empty_00000, empty_00001, empty_00002, empty_00003, "
        "empty_00004, ...)"
    ], lines
    names = [f"class_{i}" for i in range(7)]
    for name in names:
        (data / name).mkdir()
    found = scan(data, [*names, "digit_0"], "dataset.training_path")
    assert found.warnings[1] == (
        f"dataset.training_path: no images in 7 class folders ('class_0', "
        f"'class_1', 'class_2', 'class_3', 'class_4', ...) in {data}"
    )


def test_non_latin_class_names_draw_with_their_glyphs_or_as_indices(tmp_path):
    cyrillic, cjk = ["кошка", "собака"], ["猫", "犬"]
    for names in (cyrillic, cjk):
        font, labels, legend = class_labels(names, 14)
        if labels == names:
            assert draws(font, "".join(names)) and legend == []
        else:  # no installed font has the glyphs: class indices and an escaped legend
            assert label_font("".join(names), 14) is None
            assert labels == ["0", "1"] and all(line.isascii() for line in legend)
            assert legend[0].startswith("0: \\u")
        path = tmp_path / "cm.png"
        save_confusion_png(_result(np.array([0, 1]), np.array([0, 0]), names, "test"), path, "t")
        assert Image.open(path).size[0] > 100
    if label_font("".join(cyrillic), 14) is None:
        pytest.skip("no installed font draws Cyrillic (DejaVuSans or Noto): the glyph check ran on the fallback only")
    assert class_labels(cyrillic, 14)[1] == cyrillic


def test_the_wizard_counts_images_and_offers_models_with_the_engine_lists(tmp_path):
    assert IMAGE_SUFFIXES is IMAGE_EXTENSIONS and set(FORMATS) == MODEL_SUFFIXES and ".hdf5" in MODEL_SUFFIXES
    data = digits(tmp_path / "data", ["a"])
    for suffix in (".tif", ".tiff", ".webp", ".JPG"):
        Image.new("RGB", (8, 8)).save(data / "a" / f"b{suffix}", format="PNG")
    found = scan(data, None, "k")
    assert scan_class_folders(data) == (["a"], len(found.files), len(found.non_images)) == (["a"], 2, 3)


def test_a_run_skips_the_image_too_long_to_resize_and_names_it(tmp_path):
    from tests.odd_models import onnx_classifier

    data = tmp_path / "data"
    for k in range(10):
        (data / f"digit_{k}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), (k * 20, i * 90, 9)).save(data / f"digit_{k}" / f"{i}.png")
    strip = data / "digit_3" / "strip.png"
    Image.new("RGB", (1, 10_000)).save(strip)
    model = onnx_classifier(tmp_path / "model.onnx", [1, 3, 32, 32])
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(
            [
                "run",
                str(ROOT / "sample_configs" / "quantization_onnx_config.yaml"),
                f"general.model_path={model}",
                f"dataset.quantization_path={data}",
                "dataset.quantization_split=1.0",
                "preprocessing.resizing.aspect_ratio=crop",
                "preprocessing.resizing.interpolation=bilinear",
                f"mlflow.uri={tmp_path / 'mlruns'}",  # not the sample's ./experiments_outputs in the working folder
                "--output-dir",
                str(tmp_path / "run"),
                "--progress",
                "none",
            ]
        )
    assert code == 0, err.getvalue()
    log = (tmp_path / "run" / "stquant.log").read_text()
    assert (
        f"WARNING engine.data.images: skipped unreadable image {strip} (resizing 1x10000 to 32x320000 would "
        "need 24.0 GiB, over the 2 GiB bound)" in log
    )
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert (summary["calibration"]["images"], summary["calibration"]["skipped"]) == (20, 1)
