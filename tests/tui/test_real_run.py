"""A real chain_eqeb run of the bundled demo from the Run step (the real `python -m engine`), to the Summary,
whose every figure is compared with the run's `run_summary.json` (with a warning: MLflow cannot log)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from summary_figures import assert_summary_shows
from tui_helpers import ROOT, settle, wait_until

from stquant_tui.app import StquantApp

pytestmark = pytest.mark.slow


async def test_real_chain_eqeb_of_the_demo_reaches_the_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run folder (hydra.run.dir) and the MLflow store land under tmp_path
    blocker = tmp_path / "experiments_outputs" / "mlruns"  # where the config's MLflow store would go: a file
    blocker.parent.mkdir()
    blocker.write_text("not an MLflow store")
    app = StquantApp(ROOT / "sample_configs" / "chain_eqeb_config.yaml")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.step == "run", timeout=60)  # once validate passed (it runs on Review)
        await wait_until(pilot, lambda: not app.running, timeout=240)
        assert app.last_run is not None and app.last_run.exit_code == 0, app.last_run
        assert app.step == "summary"
        run_dir = Path(app.last_run.run_dir)
        assert str(tmp_path) in str(run_dir)
        written = json.loads((run_dir / "run_summary.json").read_text())
        assert Path(written["quantized_model"]).is_file() and written["accuracy"]["images"] == 300
        stages = [w["stage"] for w in written["warnings"]]  # prepare: the demo's non-image file, skipped, and
        assert stages == ["prepare"] * 2 + (["mlflow"] if find_spec("mlflow") else []), written["warnings"]
        assert "notes.txt" in written["warnings"][0]["message"]  # its test set is its calibration folder
        assert written["warnings"][1]["message"].startswith("dataset.test_path: 120 of its 300 images are also")
        assert written["footprint"]["board_fit"]["estimated_inference_ms"] is not None  # benchmarking.board
        foot = written["footprint"]
        assert foot["estimated_inference_ms"] == foot["board_fit"]["estimated_inference_ms"]
        assert_summary_shows(app, written)  # the MLflow warning too
        assert "calibration" in "\n".join(app.query_one("#step-run").lines)
