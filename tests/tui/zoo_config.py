"""The services' zoo user_config.yaml made runnable as a user would (a model, a mode stquant runs, the photos)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import ROOT

ZOO_USER_CONFIG = ROOT.parent / "shared/st_configs/services@9bb116e/image_classification/src/user_config.yaml"
ASSETS = ROOT.parent / "shared/assets"
MODEL = ASSETS / "models/flowers_mobilenet_v2_0.35_128_fft/mobilenet_v2_0.35_128_fft.h5"
FLOWERS = ASSETS / "datasets/flower_photos"


def zoo_user_config(folder: Path, mode: str = "chain_eqe", edits: tuple[tuple[str, str], ...] = ()) -> Path:
    """folder/src/user_config.yaml: the services' file with model_path, operation_mode and `edits` (old, new) made;
    its `../datasets/flower_photos` is the flowers of the shared assets. Skips when the files are absent."""
    for needed in (ZOO_USER_CONFIG, MODEL, FLOWERS):
        if not needed.exists():
            pytest.skip(f"{needed} is absent (see ../shared/assets/README.md, ../shared/st_configs/README.md)")
    (folder / "datasets").mkdir()
    (folder / "datasets/flower_photos").symlink_to(FLOWERS)
    text = ZOO_USER_CONFIG.read_text()
    for old, new in (("  model_path:\n", f"  model_path: {MODEL}\n"), ("chain_tqeb\n", f"{mode}\n"), *edits):
        assert old in text, old
        text = text.replace(old, new, 1)
    config = folder / "src" / "user_config.yaml"
    config.parent.mkdir()
    config.write_text(text)
    return config
