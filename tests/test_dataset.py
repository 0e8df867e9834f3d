"""Class-folder scanning, labels, stray files, seeded splits and streamed calibration."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.common.errors import ConfigError, InputError
from engine.data import dataset
from engine.data.calibration import ImageCalibrationData, RandomCalibrationData
from engine.data.preprocess import ImageSpec


def make_folders(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (12, 10), (i * 20 % 255, 80, 160)).save(
                root / name / f"{i:03d}.{'PNG' if i % 2 else 'jpg'}"
            )
    return root


def test_labels_follow_sorted_class_names(tmp_path):
    root = make_folders(tmp_path, {"tulips": 2, "daisy": 3, "roses": 1})
    (root / "daisy" / ".DS_Store").write_bytes(b"\0")
    (root / "daisy" / "notes.txt").write_text("x")
    found = dataset.scan(root, ["tulips", "daisy", "roses"], "dataset.quantization_path")
    assert found.class_names == ["daisy", "roses", "tulips"]
    assert found.labels == [0, 0, 0, 1, 2, 2]
    assert [p.name for p in found.non_images] == ["notes.txt"]


def test_missing_class_folder_is_named(tmp_path):
    root = make_folders(tmp_path, {"daisy": 1})
    with pytest.raises(ConfigError, match=r"dataset.class_names: no folder for class 'roses'"):
        dataset.scan(root, ["daisy", "roses"], "dataset.quantization_path")


def test_extra_and_empty_folders_are_reported(tmp_path):
    root = make_folders(tmp_path, {"daisy": 1, "roses": 0, "tulips": 0, "weeds": 1})
    (root / "daisy" / "notes.txt").write_text("x")
    found = dataset.scan(root, ["daisy", "roses", "tulips"], "k")
    assert found.extra_folders == ["weeds"]
    assert found.warnings == [
        "k: folders not in dataset.class_names, ignored: weeds",
        f"k: no images in the folder of class 'roses', 'tulips' in {root}",
        f"k: skipped 1 non-image file(s) in {root}, e.g. {root / 'daisy' / 'notes.txt'}",
    ]


def test_missing_root_and_flat_folder(tmp_path):
    with pytest.raises(InputError, match=r"dataset.test_path: dataset folder not found"):
        dataset.scan(tmp_path / "nope", None, "dataset.test_path")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"dataset.test_path: .*file.png is a file; expected a folder"):
        dataset.scan(tmp_path / "file.png", None, "dataset.test_path")
    Image.new("RGB", (4, 4)).save(tmp_path / "flat.png")
    with pytest.raises(InputError, match="no class sub-folders"):
        dataset.scan(tmp_path, None, "dataset.test_path")


def test_seeded_split_is_the_reference_order(tmp_path):
    found = dataset.scan(make_folders(tmp_path, {"a": 5, "b": 5}), None, "k")
    files, _ = dataset.shuffled(found, 127)
    order = np.arange(10)
    np.random.RandomState(127).shuffle(order)
    assert files == [found.files[i] for i in order]
    assert len(dataset.take_split(files, 0.4, "k")) == 4
    with pytest.raises(ConfigError, match=r"dataset.quantization_split: 0.05 of 10 images leaves no image"):
        dataset.take_split(files, 0.05, "dataset.quantization_split")


def test_calibration_streams_and_skips_unreadable(tmp_path, caplog):
    found = dataset.scan(make_folders(tmp_path, {"a": 4, "b": 3}), None, "k")
    broken = tmp_path / "a" / "999.jpg"
    broken.write_bytes(b"not a jpeg")
    data = ImageCalibrationData([*found.files, broken], ImageSpec(8, 8, 3, scale=1 / 127.5, offset=-1), "q")
    shapes = [batch.shape for batch in data.batches(3)]
    assert shapes == [(3, 8, 8, 3), (3, 8, 8, 3), (1, 8, 8, 3)]
    assert (data.used, data.skipped) == (7, 1)
    assert "999.jpg" in caplog.text


def test_random_calibration_goes_through_rescaling():
    data = RandomCalibrationData(ImageSpec(8, 8, 3, scale=1 / 127.5, offset=-1), seed=1, total=5)
    batch = np.concatenate(list(data.batches(2)))
    assert batch.shape == (5, 8, 8, 3) and data.used == 5
    assert batch.min() < -0.9 and batch.max() > 0.9  # the full pixel range, rescaled: not U[0, 1)
