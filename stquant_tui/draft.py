"""The shared draft config: a plain mapping edited by every step, plus which step owns which key.

The draft keeps the YAML exactly as loaded (ruamel.yaml round trip: untouched keys such as `training:`,
comments, blank lines, quoting and flow style survive a save, and an edit changes only its own line) and
stores what the user typed in the form the YAML had (`1/127.5` stays a string). All rules come from
`engine.config.schema`; nothing here decides what is valid.
"""

from __future__ import annotations

import copy
import csv
import io
import os
from pathlib import Path
from typing import Any

import yaml

from engine.common.atomic import write_text_atomic
from engine.config import schema
from engine.config.fields import accepts_none
from engine.config.keys import delete_key, get_key, set_key
from engine.config.yaml_source import read_yaml
from engine.demo import QUICK_START, SAMPLES
from stquant_tui import yaml_roundtrip

STEPS = ("dataset", "preprocessing", "model", "quantization", "review", "run", "summary")
STEP_TITLES = {
    "dataset": "Dataset",
    "preprocessing": "Preprocess",
    "model": "Model",
    "quantization": "Quantize",
    "review": "Review",
    "run": "Run",
    "summary": "Summary",
}

# Which step shows a key (longest matching prefix wins); anything else is shown on Review only.
KEY_STEPS = {
    "dataset": "dataset",
    "preprocessing": "preprocessing",
    "general.model_path": "model",
    "general": "model",
    "quantization": "quantization",
    "operation_mode": "quantization",
    "benchmarking": "quantization",
}

PATH_KEYS = (
    "general.model_path",
    "dataset.training_path",
    "dataset.validation_path",
    "dataset.test_path",
    "dataset.quantization_path",
    "dataset.prediction_path",
)

DEMO_CONFIG = Path("sample_configs") / "quantization_config.yaml"

BUILTIN: dict[str, Any] = {
    "general": {"project_name": "stquant_demo", "model_path": "sample_configs/demo/digits_cnn.h5"},
    "operation_mode": "quantization",
    "dataset": {
        "name": "digits",
        "class_names": [f"digit_{k}" for k in range(10)],
        "quantization_path": "sample_configs/demo/digits",
        "quantization_split": None,
        "seed": 123,
    },
    "preprocessing": {
        "rescaling": {"scale": "1/127.5", "offset": -1},
        "resizing": {"interpolation": "bilinear", "aspect_ratio": "fit"},
        "color_mode": "rgb",
    },
    "quantization": {
        "quantizer": "TFlite_converter",
        "quantization_type": "PTQ",
        "quantization_input_type": "uint8",
        "quantization_output_type": "float",
        "granularity": "per_channel",
        "optimize": False,
        "export_dir": "quantized_models",
    },
}


def step_of(key: str) -> str:
    """The step where a dotted key (for example a Problem's key) is edited."""
    best = ""
    for prefix in KEY_STEPS:
        if (key == prefix or key.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return KEY_STEPS[best] if best else "review"


def widget_id(key: str) -> str:
    """The widget id of a config key: the key path joined with `-`."""
    return key.replace(".", "-")


def find_demo_config(cwd: Path | None = None) -> Path | None:
    """`sample_configs/quantization_config.yaml` from the cwd, else from the repo beside this package, else the
    copy installed with the package (`engine.demo`; Save then proposes a new file in the working directory)."""
    repository = Path(__file__).resolve().parents[1]
    for candidate in ((cwd or Path.cwd()) / DEMO_CONFIG, repository / DEMO_CONFIG, SAMPLES / QUICK_START):
        if candidate.is_file():
            return candidate
    return None


class Draft:
    """The config being edited: `data` is the YAML mapping, `path` the file it came from (or None)."""

    def __init__(
        self, data: dict | None = None, path: Path | None = None, text: str | None = None, owned: bool = False
    ) -> None:
        """`owned`: `data` was just parsed for this draft alone, so it is taken as it is, not copied."""
        self.data: dict = data if owned and data is not None else copy.deepcopy(data if data is not None else BUILTIN)
        self.path = Path(path).resolve() if path else None
        self._text = text  # the file as the user wrote it (None: a new config)
        self._saved = yaml_roundtrip.snapshot(self.data)  # the data as last loaded or saved
        self._rendered: tuple[str, str, str] | None = None  # (original text, repr of data, text Save writes)

    @classmethod
    def load(cls, path: str | Path) -> Draft:
        """Read a config file as it is written (raises engine InputError/ConfigError if unreadable or if
        the round-trip parser refuses it: one line naming the file, the line and the key)."""
        read_yaml(Path(path))  # the engine's errors (file:line) for an unreadable or malformed file
        text = Path(path).read_text(encoding="utf-8")
        return cls(yaml_roundtrip.load(text, str(path)), Path(path), text, owned=True)

    def copy(self) -> Draft:
        """An independent draft with the same data, file and original text."""
        twin = Draft(self.data, self.path)
        twin._text, twin._saved = self._text, self._saved
        return twin

    # -- keys
    def get(self, key: str, default: Any = None) -> Any:
        return get_key(self.data, key, default)

    def set(self, key: str, value: Any) -> None:
        """Set a key, creating sections as needed (an explicit None is kept: it may have been written)."""
        set_key(self.data, key, yaml_roundtrip.like(self.get(key), value))

    def delete(self, key: str) -> None:
        """Remove a key (so the schema default applies); empty sections stay."""
        delete_key(self.data, key)

    def edit(self, key: str, value: Any) -> bool:
        """What a form field does: put its value in the draft, where empty (None) removes the key unless the
        schema gives null a meaning; return whether the draft changed."""
        old = self.get(key, KeyError)
        if value is None if old is KeyError else yaml_roundtrip.same(old, value):  # type-aware: 1 is not 1.0
            return False
        if value is None and not accepts_none(key):
            self.delete(key)
        else:
            self.set(key, value)
        return True

    # -- whole config
    def problems(self) -> list[schema.Problem]:
        """Every problem the engine's schema finds in the draft."""
        return schema.check(self.data, str(self.path or "<draft>"))  # check copies what it changes

    def step_problems(self, step: str) -> list[schema.Problem]:
        return [p for p in self.problems() if step_of(p.key) == step]

    def yaml_text(self) -> str:
        """The text Save writes: the loaded file with only the edited lines changed."""
        if self._text is None:
            return yaml_roundtrip.dump(self.data)
        state = repr(self.data)  # type-faithful (1, 1.0, True and "1" differ); far cheaper than parsing the file
        if self._rendered is None or self._rendered[:2] != (self._text, state):
            self._rendered = (self._text, state, yaml_roundtrip.render(self.data, self._text))
        return self._rendered[2]

    def step_yaml(self, step: str) -> str:
        """The YAML of the top-level entries that `step` edits (shown beside the form on wide terminals)."""
        part = {key: value for key, value in self.data.items() if step_of(key) == step}
        return _dump(part) if part else ""

    def save(self, path: str | Path) -> Path:
        """Write the YAML atomically (temp file + rename; the file's mode is kept); the draft then
        belongs to that file. Raises ConfigError, writing nothing, if the text would not read back as the
        draft's data."""
        target = Path(path).expanduser().resolve()
        self.rebase(target.parent)
        text = self.yaml_text()
        yaml_roundtrip.check(text, self.data, self._text, str(target))
        write_text_atomic(target, text)
        self.path, self._text, self._saved = target, text, yaml_roundtrip.snapshot(self.data)
        return target

    @property
    def modified(self) -> bool:
        """Whether the data differs from the file it was loaded from or last saved to (a new draft: from its start)."""
        return not yaml_roundtrip.same(self.data, self._saved)

    def rebase(self, folder: Path) -> None:
        """Keep relative paths pointing at the same files when the config moves to `folder`.

        Only paths found beside the old config (not from the working directory) need rewriting.
        """
        folder = folder.resolve()
        if folder == self.base_dir.resolve():
            return
        for key in PATH_KEYS:
            value = self.get(key)
            if not isinstance(value, str) or not value or Path(os.path.expanduser(value)).is_absolute():
                continue
            if Path(value).exists() or not (self.base_dir / value).exists():
                continue  # found from the working directory: the engine will find it again
            self.set(key, os.path.relpath(self.base_dir / value, folder))

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, value: str) -> Path:
        """A path from the config, resolved by the engine's own rule (cwd first, then the config folder)."""
        config = schema.Config.model_construct()
        config._base_dir = self.base_dir  # noqa: SLF001 - the engine's own path rule, on a bare Config
        return config.resolve_path(value)


# ---------------------------------------------------------------- text <-> value for form fields


def to_text(value: Any) -> str:
    """How a YAML value is shown in a one-line input."""
    if value is None:
        return ""
    if isinstance(value, list):  # comma-separated; a name with a comma or a quote is quoted (csv rules)
        return ", ".join(_csv_field(str(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_text(kind: str, text: str) -> Any:
    """The YAML value for what was typed: numbers become numbers, expressions stay text, empty is None."""
    text = text.strip()
    if text == "":
        return None
    if kind == "list":
        return [part.strip() for part in next(csv.reader([text], skipinitialspace=True)) if part.strip()]
    if kind == "number":
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text
    return text


def _csv_field(text: str) -> str:
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow([text])
    return line.getvalue()


def _dump(data: dict) -> str:
    return yaml_roundtrip.dump(data)
