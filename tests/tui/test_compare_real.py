"""A real `stquant compare` (the real `python -m engine`) of the bundled demo through the Compare screen, and what
the wizard shows of the engine's evaluation rule: every cell equals the run's comparison.json; Review shows
validate's warning when test images are also calibration images; a variant that was not measured is adopted only
after a question saying so; cancelling or quitting stops the child and leaves no temp file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, Select, Static
from tui_helpers import DEMO_CONFIG, settle, stop_with_escape, wait_until

from engine.cli import main
from stquant_tui.app import StquantApp
from stquant_tui.compare_client import CompareFinished, CompareVariant
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.engine_client import default_engine_cmd
from stquant_tui.messages import RunStage
from stquant_tui.widgets.dialogs import ConfirmScreen

pytestmark = pytest.mark.slow

SHOWN = {"per_channel": "channel", "per_tensor": "tensor"}
FIGURES = ("accuracy", "agreement", "weights_flash_kib", "activation_ram_kib", "estimated_inference_ms")
CHAIN_CONFIG = DEMO_CONFIG.with_name("chain_eqe_config.yaml")  # measured on its test_path, the calibration folder
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


async def open_compare(pilot) -> CompareScreen:
    await settle(pilot)
    pilot.app.step = "review"
    await pilot.pause()
    await pilot.press("ctrl+k")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
    return pilot.app.screen


def granularity_only(screen: CompareScreen) -> None:
    """Vary the granularity only: 2 variants."""
    for box in screen.query("#compare-options Checkbox"):
        box.value = box.id.startswith("vary-granularity")


def cell(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def validate_warnings(config: Path, capsys, monkeypatch) -> list[str]:
    """The warnings of `stquant validate CONFIG` from the config's folder, in this process (the app runs a child)."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "ABSL_MIN_LOG_LEVEL"):  # main sets them: restored after
        monkeypatch.delenv(name, raising=False)
    with monkeypatch.context() as inside:
        inside.chdir(config.parent)
        capsys.readouterr()
        code, err = main(["validate", str(config)]), capsys.readouterr().err
    assert code == 0, err
    return [line.removeprefix("stquant: warning: ") for line in err.splitlines() if ": warning: " in line]


async def test_review_warns_of_the_overlap_and_a_real_compare_shows_what_comparison_json_says(
    sandbox, capsys, monkeypatch
):
    warnings = validate_warnings(CHAIN_CONFIG, capsys, monkeypatch)
    assert OVERLAP in warnings
    seen: list = []
    app = StquantApp(CHAIN_CONFIG, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None, timeout=90)
        await pilot.pause()
        assert app.verdict.warnings == warnings  # the app's own validate is a real child
        assert f"⚠ {OVERLAP}" in str(app.query_one("#review-status", Static).render()).splitlines()

        screen = await open_compare(pilot)
        granularity_only(screen)
        screen.query_one("#compare-board", Select).value = "STM32H747I-DISCO"
        await pilot.pause()
        assert "2 variant(s)" in str(screen.query_one("#compare-title", Static).render())
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None, timeout=240)
        await pilot.pause()
        finished = screen.finished
        assert finished.exit_code == 0, finished.error
        run_dir = Path(finished.comparison.run_dir)
        assert run_dir.parent == sandbox / "experiments_outputs"
        written = json.loads((run_dir / "comparison.json").read_text())
        assert written["status"] == "ok" and len(written["variants"]) == 2
        assert written["varied"] == {"quantization.granularity": ["per_channel", "per_tensor"]}
        unique = {id(m): m for m in seen}.values()
        order = [type(m).__name__ for m in unique if isinstance(m, (CompareVariant, CompareFinished))]
        assert order == ["CompareVariant", "CompareVariant", "CompareFinished"]  # a row per variant event

        table = screen.query_one("#compare-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        expected = []
        for variant in written["variants"]:
            star = "★" if variant["index"] == written["recommended"] else ""
            expected.append(
                [
                    f"{variant['index']}{star}",
                    SHOWN[variant["settings"]["quantization.granularity"]],
                    *(cell(variant[name]) for name in FIGURES),
                ]
            )
        assert rows == expected
        assert all(v["estimated_inference_ms"] and v["agreement"] for v in written["variants"])
        info = str(screen.query_one("#compare-info", Static).render())
        assert written["evaluation_set"] == "test_set"
        assert (
            f"{written['evaluation_images']} test_path images (float {written['float_accuracy']:.2f} %) · "
            f"{written['calibration_images']} calibration · on {written['board']}"
        ) in info
        assert written["recommended"] is not None and f"agreement ≥ {written['target_agreement']:g} %" in info
        assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
        await pilot.press("a")  # a measured variant is adopted without a question
        await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert not isinstance(app.screen, ConfirmScreen)
        recommended = written["variants"][written["recommended"]]["settings"]["quantization.granularity"]
        assert app.draft.get("quantization.granularity") == recommended


async def adopting_unmeasured_asks_first(pilot, screen: CompareScreen) -> None:
    """On a finished comparison that measured nothing: `a` on variant 0 asks first; n adopts nothing, y adopts it."""
    app = pilot.app
    written = json.loads((Path(screen.finished.comparison.run_dir) / "comparison.json").read_text())
    assert written["evaluation_set"] is None and written["recommended"] is None
    assert [v["agreement"] for v in written["variants"]] == [None, None]
    info = str(screen.query_one("#compare-info", Static).render())
    assert "accuracy and agreement not measured: no evaluation images" in info
    table = screen.query_one("#compare-table", DataTable)
    assert [str(c) for c in table.get_row_at(1)][:4] == ["1", "tensor", "–", "–"]
    assert app.draft.get("quantization.granularity") == "per_tensor"

    await pilot.press("a")  # variant 0, per_channel
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    label = app.screen.query_one(Label)
    question = str(label.render())
    assert " ".join(question.split()).startswith(
        "Variant 0 (granularity=per_channel) was not measured: no evaluation images"
    )
    assert label.size == (max(map(len, question.splitlines())), len(question.splitlines()))  # all of it shows
    assert label.region.right <= app.screen.query_one("Vertical").content_region.right
    await pilot.press("n")
    await wait_until(pilot, lambda: app.screen is screen)
    assert app.draft.get("quantization.granularity") == "per_tensor"  # nothing adopted

    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_until(pilot, lambda: not isinstance(app.screen, (ConfirmScreen, CompareScreen)))
    assert app.draft.get("quantization.granularity") == "per_channel"


def calibrate_on_all(folder: Path) -> Path:
    """The demo's quantization config (no test, validation or training folder) per-tensor, with a quantization_split
    of 1.0: every image calibrates, nothing is left to measure."""
    text = DEMO_CONFIG.read_text().replace("demo/", f"{DEMO_CONFIG.parent}/demo/")
    text = text.replace("quantization_split: 0.4", "quantization_split: 1.0")
    text = text.replace("   export_dir:", "   granularity: per_tensor\n   export_dir:")
    config = folder / "calibrate_on_all.yaml"
    config.write_text(text)
    return config


async def test_an_unmeasured_variant_asks_before_adopting_then_cancelling_or_quitting_stops_the_child(sandbox):
    """One app on a config whose images all calibrate: a real compare measures nothing and adopting a variant asks
    first. Then, the draft back as loaded: esc (confirmed) stops a comparison's child with exit 130 and the screen
    stays with what was measured; a second comparison, quit mid-way, stops its child too; no temp file is left."""
    seen: list = []
    app = StquantApp(calibrate_on_all(sandbox))
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await open_compare(pilot)
        granularity_only(screen)
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None, timeout=240)
        await pilot.pause()
        assert screen.finished.exit_code == 0, screen.finished.error
        await adopting_unmeasured_asks_first(pilot, screen)

        app.adopt_settings({"quantization.granularity": "per_tensor"})  # the draft as loaded
        assert not app.draft.modified  # so ctrl+q below quits without a question
        seen.clear()
        screen = await open_compare(pilot)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any(isinstance(m, RunStage) and m.name == "load_model" for m in seen), 60)
        assert list((sandbox / "tmp").glob(".stquant-tui-compare-*"))  # the draft's copy, while it runs
        await stop_with_escape(pilot, screen)
        assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
        comparison = screen.finished.comparison
        written = json.loads((Path(comparison.run_dir) / "comparison.json").read_text())
        assert written["status"] == "interrupted" and written["variants"] == []
        assert str(screen.query_one("#compare-stage", Static).render()) == "Stopped: 0 variant(s) measured."
        assert isinstance(app.screen, CompareScreen)  # esc asked; the screen stays with what was measured

        cancelled = screen.process.process
        seen.clear()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: any(isinstance(m, RunStage) for m in seen), 60)
        child = screen.process.process
        assert child is not cancelled
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)  # quit without a question
    assert child.poll() is not None
    assert not list((sandbox / "tmp").glob(".stquant-tui-compare-*"))
