"""Model step: path (completion, file picker), `stquant inspect` in a worker, and fit warnings.

"Trust code stored in this model file" is wizard state, not a config key: when ticked, inspect and
run get `--trust-model` (Lambda layers stquant does not recognise, custom layer classes).
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widgets import Checkbox, Static
from textual.worker import Worker, WorkerState

from stquant_tui.engine_client import inspect_model
from stquant_tui.messages import InspectDone
from stquant_tui.steps.base import Step
from stquant_tui.widgets.fields import FieldRow
from stquant_tui.widgets.text import show_text
from stquant_tui.widgets.tick import Tick
from stquant_tui.workers import failure_line, when_attached

MODEL_KEYS = ("general.model_path", "preprocessing.color_mode", "quantization.target_opset")


def fit_warnings(info: dict, class_count: int | None) -> list[str]:
    """What does not match between the model and the class count (the colour mode: `stquant validate`)."""
    found = []
    width = info.get("output_width")
    if class_count and width and width != class_count and not (class_count == 2 and width == 1):
        found.append(f"model outputs {width} values but there are {class_count} classes")
    if info.get("quantized"):
        found.append("this model is already quantized")
    return found


def lambda_summary(info: dict) -> str:
    """One line on the model's Lambda layers: how many were recognised, and as what."""
    lambdas = info.get("lambda_layers") or []
    if not lambdas:
        return ""
    recognised = sorted({item["as"] for item in lambdas if item.get("recognised")})
    others = [item["name"] for item in lambdas if not item.get("recognised")]
    text = f"\nLambda layers: {len(lambdas) - len(others)} recognised ({', '.join(recognised) or '-'})"
    return text + (f", {len(others)} run as stored code (trusted): {', '.join(others)}" if others else "")


class ModelStep(Step):
    step = "model"

    def __init__(self) -> None:
        super().__init__()
        self.info: dict | None = None
        self.trust_model = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            "Keras .h5/.keras or ONNX model. → accepts a completion, ctrl+f opens a picker.", classes="step-help"
        )
        yield FieldRow("general.model_path", "Model file", path=True, placeholder="e.g. path/to/model.h5")
        yield Tick("Trust code stored in this model file (Lambda layers)", id="trust-model")
        yield Static("", id="model-info", classes="feedback")
        yield Static("", id="model-warnings", classes="feedback -warn")
        yield Static("", id="model-verdict", classes="feedback -warn")

    def draft_changed(self, key: str) -> None:
        if key in ("", "general.model_path"):
            self.info = None
            path = self.draft.get("general.model_path")
            show_text(self.query_one("#model-info", Static), "Inspecting…" if path else "No model chosen.")
            show_text(self.query_one("#model-warnings", Static), "")
            if self._timer is not None:
                self._timer.stop()
            if path:
                self._timer = self.set_timer(0.3, lambda: self.inspect(str(path)))
            if key == "":  # mounted (or loaded): validate's answer on this text, if it has one
                self.show_verdict(self.app.current_verdict)  # type: ignore[attr-defined]
        elif key.startswith("dataset.class_names") or key == "preprocessing.color_mode" or key == "detected":
            self.show_warnings()

    @on(Checkbox.Changed, "#trust-model")
    def trust_changed(self, event: Checkbox.Changed) -> None:
        self.trust_model = event.value
        self.draft_changed("general.model_path")  # inspect again: stored code is now allowed (or not)

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    def inspect(self, path: str) -> None:
        resolved = str(self.draft.resolve(path))
        engine_cmd = self.app.engine_cmd  # type: ignore[attr-defined]
        info, error = inspect_model(engine_cmd, resolved, trust_model=self.trust_model)
        self.post_message(InspectDone(path, info, error))

    @when_attached
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An inspect that raised: say so instead of "Inspecting…" forever (a newer inspect cancels an older one)."""
        if event.state is WorkerState.ERROR and event.worker.group == "inspect":
            engine_cmd = self.app.engine_cmd  # type: ignore[attr-defined]
            info = self.query_one("#model-info", Static)
            info.update(f"⚠ inspect failed ({failure_line(event.worker, engine_cmd)})".replace("[", r"\["))
            info.add_class("-warn")

    @on(InspectDone)
    @when_attached
    def inspected(self, event: InspectDone) -> None:
        if event.path != str(self.draft.get("general.model_path") or ""):
            return
        info_widget = self.query_one("#model-info", Static)
        if event.error or not event.info:
            info_widget.update(f"⚠ {event.error}")
            info_widget.add_class("-warn")
            return
        info_widget.remove_class("-warn")
        self.info = info = event.info
        shape = "x".join("N" if d is None else str(d) for d in info.get("input_shape") or [])
        info_widget.update(
            f"Format {info.get('format')} · input {info.get('input_name')} {shape} {info.get('layout')} "
            f"{info.get('dtype') or info.get('input_dtype', '')}\nOutput width {info.get('output_width')}"
            + (" · already quantized" if info.get("quantized") else "")
            + lambda_summary(info)
        )
        self.show_warnings()

    def show_warnings(self) -> None:
        if self.info is None:
            return
        names = self.draft.get("dataset.class_names")
        detected = self.app.query_one("#step-dataset").detected  # type: ignore[attr-defined]
        count = len(names) if names else (len(detected) if detected else None)
        found = fit_warnings(self.info, count)
        show_text(self.query_one("#model-warnings", Static), "\n".join(f"⚠ {w}" for w in found))

    def show_verdict(self, verdict) -> None:
        """`stquant validate`'s problems with the model: the file, its input channels, the opset (`None`: no
        answer on this text yet, nothing shown)."""
        shown = self.query("#model-verdict")
        if not shown:  # not composed yet, or being removed
            return
        if verdict is None:
            shown.first(Static).update("")
            return
        path = self.draft.get("general.model_path")
        model = str(self.draft.resolve(str(path))) if path else "\0"
        mine = [
            p
            for p in verdict.problems
            if p.key in MODEL_KEYS or "model outputs" in p.message or (not p.key and model in p.message)
        ]
        shown.first(Static).update(
            "\n".join(f"⚠ {p.key}: {p.message}" if p.key else f"⚠ {p.message}" for p in mine).replace("[", r"\[")
        )
