"""Issue 20 items 6, 7, 11, 13: the blamed field, the run log's wraps, the 80x24 layout, checks on leaving a field."""

from __future__ import annotations

from pathlib import Path

from fake_engine import recorded_summary
from replay_engine import REPLAY_ENGINE, TUTORIAL_CONFIG
from textual.widgets import DataTable, Input, RichLog, Static
from tui_helpers import DEMO_CONFIG, FAKE_ENGINE, settle, wait_until

from engine.run.summary import RunSummary
from stquant_tui.app import StquantApp
from stquant_tui.compare_screen import CompareScreen
from stquant_tui.messages import RunLog

LONG = (
    "stquant runs these operation modes: quantization, evaluation, benchmarking, chain_qb, chain_eqe, "
    "chain_eqeb; the model zoo modes read but not run: training, chain_tqe, chain_tqeb, prediction, deployment"
)


def visible_text(log: RichLog) -> str:
    """The log's lines as drawn (cropped to its region, scrolled as the user sees them), joined."""
    return "".join(log.render_line(y).text for y in range(log.scrollable_content_region.height)).replace(" ", "")


async def test_a_folder_the_mode_does_not_read_is_not_checked_and_the_run_log_keeps_every_character():
    """One app on the demo (quantization mode): the training folder is not checked on leaving it; the Run step's
    log keeps every character of a wrapped line beside its scrollbar."""
    app = StquantApp(DEMO_CONFIG, engine_cmd=FAKE_ENGINE)  # quantization: the training folder is not read
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.query_one("#dataset-training_path", Input).focus()
        await pilot.press("0", ".", "4", "tab")
        await pilot.pause()
        assert not app.query_one("#row-dataset-training_path").has_class("-invalid")

        run = await app.mount_step("run")
        app.step = "run"
        log = app.query_one("#run-log", RichLog)
        run.post_message(RunLog("INFO", LONG))  # written before the scrollbar shows
        await pilot.pause()
        assert log.max_scroll_y == 0  # nothing to scroll yet
        for index in range(40):
            run.post_message(RunLog("INFO", f"line {index}"))
        await pilot.pause()
        run.post_message(RunLog("INFO", LONG))  # written with the scrollbar showing
        await pilot.pause()
        await pilot.pause()
        assert LONG.replace(" ", "") in visible_text(log)  # the last one, at the bottom
        assert log.show_vertical_scrollbar and not log.show_horizontal_scrollbar
        log.scroll_home(animate=False)
        await pilot.pause()
        assert visible_text(log).startswith(LONG.replace(" ", ""))  # the first one, drawn beside the scrollbar


DEMO = DEMO_CONFIG.parent / "demo"
NEEDS_TEST = "operation_mode chain_eqe needs one of test_path, validation_path, training_path"


def chain_eqe_config(tmp_path: Path) -> Path:
    """The demo config in chain_eqe mode, with no test, validation or training folder and every quantization image
    calibrating (absolute paths)."""
    text = DEMO_CONFIG.read_text().replace("operation_mode: quantization", "operation_mode: chain_eqe")
    text = text.replace("quantization_split: 0.4", "quantization_split: 1.0")
    path = tmp_path / "eqe.yaml"
    path.write_text(text.replace(" demo/", f" {DEMO}/"))
    return path


def drawn(app, widget) -> str:
    """The words a widget shows on screen (its region of the rendered screen, lines joined)."""
    region = widget.region
    lines = [strip.text for strip in app.screen._compositor.render_strips()][region.y : region.bottom]
    return " ".join(" ".join(line[region.x : region.right].split()) for line in lines).strip()


async def test_a_blocked_next_names_the_field_in_full_a_missing_folder_is_flagged_on_leaving_and_both_clear(tmp_path):
    """One app on chain_eqe without a test folder: Next names the field in full; a folder that does not exist is
    flagged when leaving the field (not while typing) and blocks Next with the engine's words; fixed, both clear."""
    app = StquantApp(chain_eqe_config(tmp_path), engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        nav = app.query_one("#nav-message", Static)
        assert app.step == "dataset"
        assert drawn(app, nav) == f"✗ Fix Test folder: {NEEDS_TEST}"  # wrapped, not cut at 80 columns
        test_field = app.query_one("#dataset-test_path", Input)
        assert app.focused is test_field

        await pilot.press("0", ".", "4")
        await pilot.pause()
        row = app.query_one("#row-dataset-test_path")
        assert not row.has_class("-invalid")  # not while typing
        await pilot.press("tab")  # leaves the field
        await pilot.pause()
        missing = f"dataset folder not found: {Path.cwd() / '0.4'}"  # the engine's words (engine.data.dataset)
        assert row.has_class("-invalid") and row.error == missing
        assert missing in drawn(app, row.query_one(".field-error"))
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "dataset"
        assert drawn(app, nav) == f"✗ Fix Test folder: {missing}"
        assert app.focused is test_field

        await pilot.press("ctrl+u", *f"{DEMO}/digits")
        await pilot.pause()
        assert drawn(app, nav) == ""  # fixed: the line says nothing any more
        assert not row.has_class("-invalid")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.step == "preprocessing"


LONG_RUN_DIR = "/home/someone/projects/flowers/experiments_outputs/2026_01_01_12_00_00"


async def test_compare_at_80x24_shows_its_whole_title_and_the_folder_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLAY_RUN_DIR", LONG_RUN_DIR)
    monkeypatch.setenv("REPLAY_ARGV", str(tmp_path / "argv.json"))
    config = tmp_path / "tutorial.yaml"
    config.write_text(TUTORIAL_CONFIG)
    app = StquantApp(config, engine_cmd=REPLAY_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await pilot.pause()
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await pilot.pause()
        title = "Compare 4 variant(s) of mobilenet_v2_0.35_128_fft.h5 · flash, RAM in KiB"
        assert drawn(app, screen.query_one("#compare-title")) == title
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.finished is not None)
        await pilot.pause()
        assert screen.finished.exit_code == 0
        assert drawn(app, screen.query_one("#compare-stage")) == f"Done: {LONG_RUN_DIR}"


def summary_app() -> tuple[StquantApp, RunSummary]:
    return (
        StquantApp(DEMO_CONFIG, out_path="stquant_config.yaml", engine_cmd=FAKE_ENGINE),
        RunSummary.model_validate(recorded_summary(LONG_RUN_DIR)),
    )


def model_path_lines(app) -> list[str]:
    """The Summary's model path as drawn, one entry per screen line."""
    lines = [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]
    first = next(i for i, line in enumerate(lines) if line.startswith(" Model  "))
    shown = [lines[first].removeprefix(" Model").strip()]
    while not shown[-1].endswith(".tflite"):
        assert shown[-1].endswith("/"), shown  # each line ends between two folders, never inside a name
        shown.append(lines[first + len(shown)].strip())
    return shown


async def show_summary(pilot, summary: RunSummary) -> None:
    await settle(pilot)
    (await pilot.app.mount_step("summary")).show(summary)
    pilot.app.step = "summary"
    await pilot.pause()


async def test_summary_breaks_the_model_path_between_folders_at_120_and_80_columns_and_its_tables_fit():
    """One app: at 120 columns the model path breaks between folders and the per-layer table shows full names; resized
    to 80 columns, the names are abbreviated, the path breaks between folders again and the full-screen table has its
    own title line and says how to scroll."""
    app, summary = summary_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await show_summary(pilot, summary)
        shown = model_path_lines(app)
        assert len(shown) > 1 and "".join(shown) == summary.quantized_model

        table = app.query_one("#summary-layers", DataTable)
        names = [layer.name for layer in summary.footprint.layers]
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == names  # full names, not cut to 80
        assert [str(c.label) for c in table.columns.values()][-1] == "Output"
        assert max(map(len, names)) > 21 and table.size.width > 80
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        long = next(i for i, name in enumerate(names) if len(name) > 21)
        assert table.get_row_at(long)[0] == "…" + names[long][-20:]  # abbreviated again at 80 columns
        at_80 = model_path_lines(app)
        assert len(at_80) > 1 and at_80 != shown and "".join(at_80) == summary.quantized_model  # laid out anew

        await pilot.press("f")
        await pilot.pause()
        await pilot.pause()
        lines = [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]
        assert lines[0] == "Per-layer footprint"  # not drawn over the step bar
        assert "→ Scroll ▶" in lines[-1] and "esc Close" in lines[-1]
        table = app.screen.query_one(DataTable)
        assert table.max_scroll_x > 0 and table.scroll_x == 0
        await pilot.press("right")
        await pilot.pause()
        assert table.scroll_x == 8
