"""What the wizard shows of the engine's evaluation rule, with the real engine on the bundled demo: a variant that
was not measured is adopted only after a question saying so; Review shows validate's warning when test images are
also calibration images."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, Static
from tui_helpers import DEMO_CONFIG, ROOT, settle, wait_until

from engine.cli import main
from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.engine_client import default_engine_cmd
from stquant_tui.widgets.dialogs import ConfirmScreen

pytestmark = pytest.mark.slow

CHAIN_CONFIG = DEMO_CONFIG.with_name("chain_eqe_config.yaml")  # test_path is the calibration folder
OVERLAP = (
    "dataset.test_path: 120 of its 300 images are also calibration images (dataset.quantization_path); "
    "accuracy on them is optimistic"
)


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """Comparison folders (hydra.run.dir is relative), the statistics cache and temp files under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


async def test_adopting_a_variant_that_was_not_measured_asks_first(sandbox):
    """The demo's quantization config names no test, validation or training folder, and with a quantization_split
    of 1.0 every quantization image calibrates: nothing is measured."""
    app = StquantApp(DEMO_CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.draft.edit("dataset.quantization_split", 1.0)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        for box in screen.query("#compare-options Checkbox"):  # granularity only: 2 variants
            box.value = box.id.startswith("vary-granularity")
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None, timeout=240)
        await pilot.pause()
        assert screen.finished.exit_code == 0, screen.finished.error
        written = json.loads((Path(screen.finished.comparison.run_dir) / "comparison.json").read_text())
        assert written["evaluation_set"] is None and written["recommended"] is None
        assert [v["agreement"] for v in written["variants"]] == [None, None]
        info = str(screen.query_one("#compare-info", Static).render())
        assert "accuracy and agreement not measured: no evaluation images" in info
        table = screen.query_one("#compare-table", DataTable)
        assert [str(c) for c in table.get_row_at(1)][:4] == ["1", "tensor", "–", "–"]
        assert app.draft.get("quantization.granularity") in (None, "per_channel")
        before = app.draft.get("quantization.granularity")

        await pilot.press("down", "a")  # variant 1, per_tensor
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        label = app.screen.query_one(Label)
        question = str(label.render())
        assert " ".join(question.split()).startswith(
            "Variant 1 (granularity=per_tensor) was not measured: no evaluation images"
        )
        assert label.size == (max(map(len, question.splitlines())), len(question.splitlines()))  # all of it shows
        assert label.region.right <= app.screen.query_one("Vertical").content_region.right
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is screen)
        assert app.draft.get("quantization.granularity") == before  # nothing adopted

        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not isinstance(app.screen, (ConfirmScreen, CompareScreen)))
        assert app.draft.get("quantization.granularity") == "per_tensor"


def validate_warnings(config: Path, capsys, monkeypatch) -> list[str]:
    """The warnings of `stquant validate CONFIG` from the config's folder, in this process (the app runs a child)."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "ABSL_MIN_LOG_LEVEL"):  # main sets them: restored after
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(config.parent)
    capsys.readouterr()
    code, err = main(["validate", str(config)]), capsys.readouterr().err
    assert code == 0, err
    return [line.removeprefix("stquant: warning: ") for line in err.splitlines() if ": warning: " in line]


async def test_review_shows_that_test_images_are_calibration_images(monkeypatch, capsys):
    warnings = validate_warnings(CHAIN_CONFIG, capsys, monkeypatch)
    assert OVERLAP in warnings
    monkeypatch.chdir(ROOT)
    app = StquantApp(CHAIN_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None, timeout=90)
        await pilot.pause()
        assert app.verdict.warnings == warnings
        assert f"⚠ {OVERLAP}" in str(app.query_one("#review-status", Static).render()).splitlines()
