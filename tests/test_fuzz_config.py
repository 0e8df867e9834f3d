"""Seeded fuzzing of `stquant validate` and of the wizard's Draft with mutated sample configs.

Every case must end in a documented outcome: exit 0, 2 or 3 with at most a few lines on stderr and no
traceback, within 10 s; `Draft.load(path).problems()` raises nothing but the engine's own errors, and a
wizard field check (`validate_field`) returns a message or None for any value.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import os
import random
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.common.errors import StquantError
from engine.config import schema
from engine.config.keys import delete_key, set_key
from stquant_tui.draft import Draft
from tests.conftest import DEMO, ROOT

SEED = 20261130
CASES = int(os.environ.get("STQUANT_FUZZ_CASES", "1500"))  # more locally: STQUANT_FUZZ_CASES=20000
MAX_LINES = 8
BASES = sorted((ROOT / "sample_configs").glob("*.yaml"))

INTS = [0, 1, -1, 2, 13, 17, 18, 19, 123, 2**31, 2**32 - 1, 2**32, 2**63, 10**30, -(10**30)]
FLOATS = [0.0, -0.5, 0.4, 1.0, 1.5, 1e-300, 1e300, float("inf"), float("-inf"), float("nan")]
STRINGS = [
    "",
    " ",
    "None",
    "null",
    "True",
    "false",
    "1/127.5",
    "-1",
    "(128, 128, 3)",
    "(1e300)**2",
    "9**9**9**9",
    "((10**64)**64)**64",
    "1e400",
    "inf",
    "nan",
    "-(" * 30 + "1" + ")" * 30,
    "2**-2000",
    "(-8)**0.5",
    "__import__('os').system('true')",
    "x" * 5000,
    "a\0b",
    "\ud800",
    "~nosuchuser/x",
    "~root/x",
    "~",
    "/",
    "/dev/null",
    "/proc/self/mem",
    "../" * 40,
    "${STQUANT_UNSET_VARIABLE}",
    "${HOME}",
    "${now:%Y}",
    "${now:\0}",
    "%s%n",
    "\n\n",
    "é/日本/🙂",
    "a" * 300 + "/b",
    "demo/digits",
    "demo/digits_cnn.h5",
    "demo/digits/digit_0",
    "demo/digits/digit_0/0030.png",
    "quantization",
    "chain_eqe",
    "quantizaton",
    "training",
    "per_tensor",
    "Onnx_quantizer",
    "tflite_converter",
    "uint8",
    "nearest",
    "lanczos5",
    "crop",
    "grayscale",
    "rgba",
    "NUCLEO-F401RE",
    "no-such-board",
    "entropy",
    "calib_moving_average",
    "http://example.com/m.h5",
]
LISTS = [[], [1, 2], ["a", "a"], ["digit_0"], [f"digit_{k}" for k in range(10)], [[[]]], [None], ["x" * 400]]
DICTS = [{}, {"a": 1}, {"scale": 1, "offset": 0}, {"dir": "x"}, {"": None}]
JUNK_OVERRIDES = [
    "=",
    "==",
    "x",
    "=3",
    ".=1",
    "a..b=1",
    "+general.model_path=",
    "general=5",
    "general.model_path",
    "dataset.seed=-1",
    "dataset.seed=x",
    "dataset.seed=1e400",
    "operation_mode=quantizaton",
    "nope.key=1",
    "preprocessing.rescaling.scale=(1e300)**2",
    "preprocessing.rescaling.scale=.nan",
    "dataset.class_names=[a,a]",
    "x=&a [*a]",
    "x=!!python/object/apply:os.system [true]",
    "general.model_path=" + "a" * 5000,
    "dataset.quantization_path=~nosuchuser/x",
    "hydra.run.dir=\0",
    "quantization.target_opset=9",
    "dataset.test_path=demo/digits",
    "general.global_seed=99",
    "dataset.classes_file_path=x.txt",
    "x=[" * 30,
    "x=" + "[" * 2000,
    "evaluation.target=stedgeai_host",
    "operation_mode=chain_eqe",
]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def schema_keys() -> list[str]:
    """Every dotted key of the schema (sections and fields)."""
    keys = []

    def walk(model, prefix):
        for name in model.model_fields:
            key = prefix + name
            keys.append(key)
            inner = schema.model_of(schema.field_annotation(key))
            if inner is not None:
                walk(inner, key + ".")

    walk(schema.Config, "")
    return keys


KEYS = schema_keys()


def random_value(rng: random.Random):
    kind = rng.choice(["int", "float", "str", "str", "bool", "none", "list", "dict"])
    if kind == "int":
        return rng.choice([*INTS, rng.randint(-(2**40), 2**40)])
    if kind == "float":
        return rng.choice([*FLOATS, rng.uniform(-2, 2)])
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "bool":
        return rng.random() < 0.5
    return {"none": None, "list": rng.choice(LISTS), "dict": rng.choice(DICTS)}[kind]


def base_data(path: Path) -> dict:
    """A sample config with its relative paths made absolute (cases are written elsewhere)."""
    data = yaml.safe_load(path.read_text())
    data["general"]["model_path"] = str(DEMO / "digits_cnn.h5")
    for key in list(data.get("dataset") or {}):
        if key.endswith("_path"):
            data["dataset"][key] = str(DEMO / "digits")
    return data


def make_case(rng: random.Random, bases: list[dict]) -> tuple[bytes, list[str], str]:
    """(file content, overrides, mutation kind)."""
    data = copy.deepcopy(rng.choice(bases))  # plain YAML data: as a safe_dump and safe_load would give it
    kind = rng.choices(
        ["values", "delete", "unknown", "none", "broken", "bomb", "tag", "bytes", "overrides"],
        [40, 8, 5, 5, 10, 2, 3, 3, 24],
    )[0]
    overrides: list[str] = []
    if kind == "values":
        for _ in range(rng.randint(1, 3)):
            set_key(data, rng.choice(KEYS), random_value(rng))
    elif kind == "delete":
        delete_key(data, rng.choice(KEYS))
    elif kind == "unknown":
        set_key(
            data,
            rng.choice(KEYS).rpartition(".")[0] + rng.choice([".granulrity", ".x", ".__class__", "._x"]).lstrip("."),
            random_value(rng),
        )
    elif kind == "overrides":
        overrides = rng.sample(JUNK_OVERRIDES, rng.randint(1, 3))
        overrides += [f"{rng.choice(KEYS)}={rng.choice(STRINGS)}".replace("\0", "")]
    text = dumped(data).encode("utf-8", "surrogatepass")
    if kind == "broken":
        text = broken(rng, text)
    elif kind == "bomb":
        text = BOMB.encode() + text if rng.random() < 0.5 else b"general: &g [*g]\n"
    elif kind == "tag":
        text += rng.choice(
            [
                b"x: !!python/object/apply:os.system ['true']\n",
                b"y: !!python/name:os.system\n",
                b"general: !!python/object:engine.config.schema.General {}\n",
            ]
        )
    elif kind == "bytes":
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xfe\xff"]) + text[cut:]
    return text, overrides, kind


def dumped(data: dict) -> str:
    """`yaml.safe_dump(data, sort_keys=False, allow_unicode=True)`, written by libyaml where its text is the same
    (PyYAML's own emitter for an empty key, a character beyond U+FFFF or a surrogate, which libyaml writes
    otherwise or refuses)."""
    emitter = yaml.SafeDumper if _libyaml_differs(data) else getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=emitter, sort_keys=False, allow_unicode=True)


def _libyaml_differs(data: dict) -> bool:
    stack: list[object] = [data]
    seen: set[int] = set()  # a case may hold a list inside itself (the dumper writes an alias)
    while stack:
        value = stack.pop()
        if isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            stack += [*value, *value.values()] if isinstance(value, dict) else value
            if isinstance(value, dict) and "" in value:
                return True
        elif isinstance(value, str) and any(ord(char) > 0xFFFF or 0xD800 <= ord(char) <= 0xDFFF for char in value):
            return True
    return False


def broken(rng: random.Random, text: bytes) -> bytes:
    choice = rng.randrange(7)
    cut = rng.randrange(len(text))
    return [
        text[:cut],
        text[:cut] + b": : [{\n" + text[cut:],
        text.replace(b"  ", b"\t", 1),
        b"- a\n- b\n",
        b"",
        b"---\na: 1\n---\nb: 2\n",
        b"42\n",
    ][choice]


def run_case(path: Path, content: bytes, overrides: list[str]) -> tuple[int, list[str], float]:
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path), *overrides])
    return code, err.getvalue().splitlines(), time.perf_counter() - started


@pytest.fixture
def case_folder(tmp_path):
    """A folder for the case file: in memory (/dev/shm) when there is one, as disk opens dominate the time."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        yield Path(folder)


def test_fuzzed_configs_end_in_documented_outcomes(case_folder, capsys, monkeypatch):
    monkeypatch.setenv("LANGUAGE", "C")  # argparse's gettext then skips its locale-file lookups (a third of the time)
    rng = random.Random(SEED)
    bases = [yaml.safe_load(yaml.safe_dump(base_data(path))) for path in BASES]  # keys sorted, once
    path = case_folder / "case.yaml"
    outcomes: collections.Counter = collections.Counter()
    failures = []
    started = time.perf_counter()
    for case in range(CASES):
        content, overrides, kind = make_case(rng, bases)
        code, lines, seconds = run_case(path, content, overrides)
        outcomes[code] += 1
        bad = (
            code not in (0, 2, 3)
            or not 0 < len(lines) + (code == 0) <= MAX_LINES
            or seconds > 10
            or any("Traceback" in line or "engine failure" in line for line in lines)
        )
        key, value = rng.choice(KEYS), random_value(rng)
        try:  # a wizard field: typed text, or the YAML value
            assert all(isinstance(schema.validate_field(key, v), (str, type(None))) for v in (value, str(value)))
            problems = Draft.load(path).problems()
            assert all(isinstance(problem, schema.Problem) for problem in problems)
        except StquantError:
            pass
        except Exception as exc:  # noqa: BLE001 - recorded as a failure with the case
            bad = True
            lines = [*lines, f"Draft raised {exc.__class__.__name__}: {exc}"]
        if bad:
            failures.append((case, kind, code, content[:300], overrides, lines[:3], round(seconds, 2)))
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nfuzz: {CASES} cases in {elapsed:.1f} s, exit codes {dict(sorted((int(k), v) for k, v in outcomes.items()))}"
        )
    assert not failures, "\n".join(map(repr, failures[:10]))
    assert outcomes[0] > CASES // 10 and outcomes[2] > CASES // 3 and outcomes[3] > 0


@pytest.mark.parametrize("path", BASES, ids=lambda p: p.name)
def test_every_base_config_validates(path, tmp_path):
    target = tmp_path / "case.yaml"
    content = yaml.safe_dump(base_data(path)).encode()
    code, lines = run_case(target, content, [])[:2]
    assert code == 0  # the demo's stray digit_0/notes.txt is a warning, nothing else
    assert all(line.startswith("stquant: warning: ") for line in lines), lines
