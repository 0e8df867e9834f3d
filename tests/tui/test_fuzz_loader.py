"""Seeded fuzzing of the wizard's loader (`Draft.load`: a config file to a draft, in-process, no TensorFlow).

The configs come from the config fuzzer's generator (tests/test_fuzz_config.py), plus the mutations a careless
editor makes: tabs, duplicated keys and sections, a BOM, UTF-16 or Latin-1 text, CRLF, NUL bytes, a huge file,
binary junk. Every case must end as a loaded draft that reads as the engine reads the file (YAML 1.1 scalars included), or
one line naming the file (an engine error), never another exception, within the bound of CPU time (the process's
own, so a busy machine does not count: the bound catches a loader that loops or goes quadratic, not a slow host).
"""

from __future__ import annotations

import collections
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.common.errors import StquantError
from engine.config.yaml_source import MAX_BYTES, read_yaml
from stquant_tui import yaml_roundtrip
from stquant_tui.draft import Draft
from tests.test_fuzz_config import BASES, base_data, make_case

SEED = 20261206
CASES = 300  # a few ms of CPU each (the line this test prints): well inside the bound below
TIME_BOUND = 20.0  # seconds of CPU for all the cases
CASE_BOUND = 2.0  # seconds of CPU for any one case


def tab_separator(rng: random.Random, text: bytes) -> bytes:
    """`key:<TAB>value` once (PyYAML reads it, ruamel.yaml refuses it)."""
    spots = [i for i in range(len(text) - 1) if text[i : i + 2] == b": "]
    if not spots:
        return text
    cut = rng.choice(spots)
    return text[: cut + 1] + b"\t" + text[cut + 2 :]


def tab_indent(rng: random.Random, text: bytes) -> bytes:
    """One indented line indented with a tab instead."""
    lines = text.split(b"\n")
    indented = [i for i, line in enumerate(lines) if line.startswith(b" ")]
    if indented:
        i = rng.choice(indented)
        lines[i] = b"\t" + lines[i].lstrip(b" ")
    return b"\n".join(lines)


def duplicate_line(rng: random.Random, text: bytes) -> bytes:
    """A `key: value` line written twice (a nested duplicate key)."""
    lines = text.split(b"\n")
    keyed = [i for i, line in enumerate(lines) if b": " in line]
    if keyed:
        i = rng.choice(keyed)
        lines.insert(i + 1, lines[i])
    return b"\n".join(lines)


def duplicate_section(rng: random.Random, text: bytes) -> bytes:
    """A top-level section written again at the end (a second `general:` block)."""
    lines = text.split(b"\n")
    starts = [i for i, line in enumerate(lines) if line[:1].isalpha()]
    if not starts:
        return text
    first = rng.choice(starts)
    last = next((i for i in starts if i > first), len(lines))
    return text.rstrip(b"\n") + b"\n" + b"\n".join(lines[first:last]) + b"\n"


YAML_11_SCALARS = [b"no", b"yes", b"on", b"Off", b"0755", b"1:30", b"1e3", b"1.0e+3", b"0o17", b"1_000", b"~", b"08"]


def yaml_11_scalar(rng: random.Random, text: bytes) -> bytes:
    """One value replaced by a scalar YAML 1.1 and 1.2 read differently (`no`, `0755`, `1e3`)."""
    lines = text.split(b"\n")
    valued = [i for i, line in enumerate(lines) if b": " in line and not line.rstrip().endswith(b":")]
    if valued:
        i = rng.choice(valued)
        lines[i] = lines[i][: lines[i].index(b": ") + 2] + rng.choice(YAML_11_SCALARS)
    return b"\n".join(lines)


def insert(rng: random.Random, text: bytes, junk: bytes) -> bytes:
    cut = rng.randrange(len(text) + 1)
    return text[:cut] + junk + text[cut:]


MUTATIONS = {
    "none": lambda rng, text: text,
    "tab-separator": tab_separator,
    "tab-indent": tab_indent,
    "duplicate-key": duplicate_line,
    "duplicate-section": duplicate_section,
    "bom": lambda rng, text: b"\xef\xbb\xbf" + text,
    "utf-16": lambda rng, text: text.decode("utf-8", "replace").encode("utf-16"),
    "latin-1": lambda rng, text: insert(rng, text, b"caf\xe9"),
    "crlf": lambda rng, text: text.replace(b"\n", b"\r\n"),
    "nul": lambda rng, text: insert(rng, text, b"\0"),
    "huge": lambda rng, text: text + b"#" * MAX_BYTES,
    "binary": lambda rng, text: rng.randbytes(rng.randint(1, 4096)),
    "yaml-1.1-scalar": yaml_11_scalar,
}
WEIGHTS = [20, 12, 8, 12, 10, 6, 4, 4, 6, 4, 2, 4, 10]


@pytest.fixture
def case_file(tmp_path: Path) -> Iterator[Path]:
    """Where each case is written: in memory (/dev/shm) when there is one."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path / "case.yaml"
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        yield Path(folder) / "case.yaml"


def outcome(path: Path) -> str:
    """What the loader made of the file: a draft, or a refusal (by the engine's reader or by the round trip)."""
    try:
        engine_data = read_yaml(path).data
    except StquantError:
        engine_data = None
    try:
        draft = Draft.load(path)
    except StquantError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message, message  # one line naming the file
        return "refused by the engine's reader" if engine_data is None else "refused by the round-trip loader"
    assert isinstance(draft.data, dict) and engine_data is not None
    differences = yaml_roundtrip.changed_keys(engine_data, draft.data)
    assert not differences, f"the wizard reads {differences[:3]} otherwise than the engine"
    return "loaded"


def test_the_loader_ends_every_fuzzed_config_as_a_draft_or_one_line(case_file, capsys):
    rng = random.Random(SEED)
    bases = [base_data(path) for path in BASES]
    kinds: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    failures = []
    started = time.process_time()
    for case in range(CASES):
        content = make_case(rng, bases)[0]
        kind = rng.choices(list(MUTATIONS), WEIGHTS)[0]
        content = MUTATIONS[kind](rng, content)
        case_file.write_bytes(content)
        kinds[kind] += 1
        case_started = time.process_time()
        try:
            outcomes[outcome(case_file)] += 1
        except Exception as exc:  # noqa: BLE001 - recorded with its case: the assertion below lists them
            failures.append((case, kind, f"{exc.__class__.__name__}: {exc}"[:300], content[:200]))
        if time.process_time() - case_started > CASE_BOUND:
            failures.append((case, kind, f"took {time.process_time() - case_started:.1f} s of CPU", content[:200]))
    elapsed = time.process_time() - started
    with capsys.disabled():
        print(
            f"\nloader fuzz: {CASES} cases in {elapsed:.1f} s of CPU; mutations {dict(sorted(kinds.items()))}; "
            f"outcomes {dict(sorted(outcomes.items()))}"
        )
    assert not failures, "\n".join(map(repr, failures[:10]))
    assert elapsed < TIME_BOUND
    assert outcomes["loaded"] > CASES // 5 and outcomes["refused by the engine's reader"] > CASES // 10
    assert outcomes["refused by the round-trip loader"] > 0  # the tab separators PyYAML reads and ruamel refuses
