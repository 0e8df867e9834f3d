"""Dataset step: class-folder roots, split, seed, class names, with live folder feedback."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from engine.common.errors import StquantError, first_line
from engine.config.schema import EVALUATION_MODES
from engine.config.unused_keys import dataset_keys_read
from stquant_tui.engine_client import scan_class_folders
from stquant_tui.messages import DatasetScanned
from stquant_tui.steps.base import Step
from stquant_tui.widgets.fields import FieldRow
from stquant_tui.widgets.text import show_text
from stquant_tui.workers import when_attached

PATH_KEYS = ("dataset.quantization_path", "dataset.training_path", "dataset.validation_path", "dataset.test_path")


class DatasetStep(Step):
    step = "dataset"

    def __init__(self) -> None:
        super().__init__()
        self.detected: list[str] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Class folders: one sub-folder per class; ctrl+f browses.", classes="step-help")
        yield FieldRow("dataset.name", "Dataset name")
        yield FieldRow(
            "dataset.quantization_path",
            "Quantization folder",
            path=True,
            placeholder="e.g. path/to/classes/",
            check=self.check_folder,
        )
        yield FieldRow("dataset.training_path", "Training folder", path=True, check=self.check_folder)
        yield FieldRow("dataset.validation_path", "Validation folder", path=True, check=self.check_folder)
        yield FieldRow("dataset.test_path", "Test folder", path=True, check=self.check_folder)
        yield FieldRow(
            "dataset.quantization_split", "Quantization split", "number", placeholder="(all) or a fraction in (0..1]"
        )
        yield FieldRow("dataset.seed", "Seed", "number")
        yield FieldRow("dataset.class_names", "Class names", "list", placeholder="(from the folders; ctrl+t)")
        yield Static("", id="dataset-feedback", classes="feedback")

    def check_folder(self, key: str, value: object) -> str | None:
        """The engine's check of a dataset root (exists, is a folder, has class folders), for a folder the
        operation mode reads (`engine.config.unused_keys`); its message without the key."""
        from engine.data.dataset import check_root  # numpy: not before the first screen

        read = dataset_keys_read(str(self.draft.get("operation_mode")), lambda name: self.draft.get(f"dataset.{name}"))
        if key.removeprefix("dataset.") not in read:
            return None
        try:
            check_root(self.draft.resolve(str(value)), key)
        except StquantError as exc:
            return str(exc).removeprefix(f"{key}: ")
        return None

    def scanned_key(self) -> str | None:
        for key in ("dataset.quantization_path", "dataset.training_path", "dataset.test_path"):
            if self.draft.get(key):
                return key
        return None

    def draft_changed(self, key: str) -> None:
        needs_eval = self.draft.get("operation_mode") in EVALUATION_MODES
        for name in ("validation_path", "test_path"):
            row = self.query_one(f"#row-dataset-{name}", FieldRow)
            row.display = needs_eval or bool(self.draft.get(f"dataset.{name}"))
        if key == "" or key in PATH_KEYS or key == "dataset.class_names":
            scanned = self.scanned_key()
            if scanned is None:
                self.detected = None
                self.feedback("No dataset folder: calibration will use random data.")
            else:
                if key != "dataset.class_names":
                    self.feedback("Scanning…")
                self.scan(scanned, self.draft.get(scanned), self.draft.get("dataset.class_names"))

    @work(thread=True, group="dataset-scan", exit_on_error=False)
    def scan(self, key: str, value: str, names: list[str] | None) -> None:
        """Count classes and images, then ask the engine's own dataset scan what it thinks (its words)."""
        from engine.data.dataset import (
            scan as engine_scan,  # numpy: imported in this thread, after the first screen
        )

        folder: Path = self.draft.resolve(str(value))
        try:
            classes, images, others = scan_class_folders(folder)
        except OSError as exc:
            reason = "does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror or "unreadable"
            self.post_message(DatasetScanned(key, str(value), error=f"{value}: {reason}", names=names))
            return
        try:
            engine_says = engine_scan(folder, list(names) if names else None, key).warnings
        except StquantError as exc:
            engine_says = [str(exc)]
        self.post_message(
            DatasetScanned(key, str(value), classes, images, others, names=names, engine_says=engine_says)
        )

    @when_attached
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A scan that raised: say so instead of "Scanning…" forever."""
        error = event.worker.error
        if event.state is WorkerState.ERROR and event.worker.group == "dataset-scan" and error is not None:
            self.detected = None
            reason = f"{type(error).__name__}: {first_line(error)}".replace("[", r"\[")
            self.feedback(f"⚠ the folder scan failed: {reason}", warn=True)

    @on(DatasetScanned)
    @when_attached
    def scanned(self, event: DatasetScanned) -> None:
        if event.path != str(self.draft.get(event.key) or "") or event.names != self.draft.get("dataset.class_names"):
            return  # an older scan
        self.last_scan = event
        self.detected = None if event.error else event.classes
        self.show_counts()

    def show_counts(self) -> None:
        event = getattr(self, "last_scan", None)
        if event is None:
            return
        if event.error:
            self.feedback(f"⚠ {event.error}", warn=True)
            return
        label = event.key.split(".")[-1]
        text = f"{label}: {len(event.classes)} classes, {event.images} images"
        if event.other_files:
            text += f", {event.other_files} non-image file(s) (skipped)"
        engine_says = [line for line in event.engine_says if "non-image" not in line]  # counted above
        warn = len(event.classes) < 2 or event.images == 0 or bool(engine_says)
        if not self.draft.get("dataset.class_names") and event.classes:
            text += "\nclass_names not set: ctrl+t uses the folder names"
        text += "".join(f"\n⚠ {line}" for line in engine_says)
        self.feedback(text, warn)

    def feedback(self, text: str, warn: bool = False) -> None:
        widget = self.query_one("#dataset-feedback", Static)
        show_text(widget, text)
        widget.set_class(warn, "-warn")

    def use_detected(self) -> None:
        if self.detected:
            self.query_one("#row-dataset-class_names", FieldRow).show(self.detected)
