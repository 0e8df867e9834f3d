"""Careless and hostile outputs, races, caches and config files (issue 19, part A): each case ends in its
documented outcome (exit code, one line naming the key or path), and nothing of the user's is lost."""

import base64
import contextlib
import errno
import io
import json
import logging
import math
import os
import random
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.common.errors import ConfigError, InputError, OutputError
from engine.config.schema import load_config
from engine.quantize.cache import QUANTIZED_MODEL, TFLITE_RANGES, Entry, StatsCache, _digest, cache_folder
from engine.run.folder import LOCK_NAME, claimed_run_dir
from tests.conftest import DEMO, ROOT, _asset
from tests.test_cli_errors import demo_config, write
from tests.test_stats_cache import statistics_entries

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("stquant: ") and "warning" not in line]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes (but the empty lock file a refused run may have created)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not (p.name == LOCK_NAME and not p.stat().st_size)]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def stquant(*argv, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=timeout,
        **kwargs,
    )


# ---------------------------------------------------------------- never write over an input


@pytest.fixture
def config_beside(tmp_path) -> Path:
    """A user's config (with a comment) in its own folder, named config.yaml as the run's copy is."""
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text("# my notes\n" + Path(write(tmp_path, demo_config(tmp_path))).read_text())
    return path


@pytest.mark.parametrize("spelling", ["plain", "dot", "symlinked_config", "symlinked_folder"])
def test_output_dir_beside_the_config_never_overwrites_it(tmp_path, capsys, config_beside, spelling):
    folder = config_beside.parent
    config, output = config_beside, folder
    if spelling == "dot":
        output = folder / "sub" / ".."
        (folder / "sub").mkdir()
    elif spelling == "symlinked_config":
        config = tmp_path / "link.yaml"
        config.symlink_to(config_beside)
    elif spelling == "symlinked_folder":
        output = tmp_path / "alias"
        output.symlink_to(folder)
    before = snapshot(folder)
    code, _, err = run_cli(capsys, "run", config, "--output-dir", output, "--progress", "none")
    assert code == 2
    assert error_lines(err) == [
        f"stquant: --output-dir: the run would write {output / 'config.yaml'} over {config} "
        "(the config file); choose another folder"
    ]
    assert snapshot(folder) == before and not (folder / LOCK_NAME).exists()  # nothing written: refused first


def test_output_dir_would_write_over_the_model_or_into_a_dataset(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "quantized_models").mkdir(parents=True)
    model = Path(shutil.copy(DEMO / "digits_cnn.h5", run_dir / "quantized_models" / "mine.h5"))
    config = write(tmp_path, demo_config(tmp_path, general__model_path=str(model)))
    before = snapshot(run_dir)
    code, _, err = run_cli(capsys, "run", config, "--output-dir", run_dir, "--progress", "none")
    assert code == 2 and error_lines(err) == [
        f"stquant: --output-dir: {model} (general.model_path) lies in {run_dir / 'quantized_models'}, which the run "
        "writes into; choose another folder"
    ]
    assert snapshot(run_dir) == before
    inside = DEMO / "digits" / "digit_3"
    config = write(tmp_path, demo_config(tmp_path))
    code, _, err = run_cli(capsys, "run", config, "--output-dir", inside, "--progress", "none")
    assert code == 2 and error_lines(err) == [
        f"stquant: --output-dir: {inside} is inside the dataset folder {DEMO / 'digits'} (dataset.quantization_path); "
        "the run would write into it; choose a folder outside the dataset"
    ]
    assert not (inside / LOCK_NAME).exists() and not (inside / "config.yaml").exists()


def test_empty_output_dir_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, demo_config(tmp_path))
    for command in (["run", config], ["compare", config, "--vary", "quantization.granularity=per_tensor"]):
        code, _, err = run_cli(capsys, *command, "--output-dir", "", "--progress", "none")
        assert code == 2 and error_lines(err) == [
            f'stquant: usage: argument --output-dir: an empty folder name; name the run folder ("." for this one) '
            f"(see stquant {command[0]} --help)"
        ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


# ---------------------------------------------------------------- one run per folder at a time


class _SecondRunAtCalibration(io.StringIO):
    """stdout of a jsonl run that, when the run's calibration stage starts (its folder held), runs `argv` in a
    process of its own and keeps what it did."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__()
        self.argv, self.second = argv, None

    def write(self, text: str) -> int:
        if self.second is None and '"name": "calibration"' in text:
            self.second = stquant(*self.argv)
        return super().write(text)


def test_two_concurrent_runs_into_one_folder(tmp_path):
    """Two real processes on the bundled demo: a second one, started while this one runs, is refused."""
    run_dir = tmp_path / "run"
    config = ROOT / "sample_configs" / "quantization_config.yaml"
    argv = ["run", str(config), "--output-dir", str(run_dir), "--progress", "none", f"mlflow.uri={tmp_path / 'mlruns'}"]
    out, err = _SecondRunAtCalibration(argv), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--progress", "jsonl"])  # this process: its run holds the folder
    assert code == 0 and out.second is not None, err.getvalue()
    assert out.second.returncode == 3 and out.second.stderr.splitlines() == [
        f"stquant: --output-dir: {run_dir} is in use by another stquant run; wait for it to end or choose another "
        "folder"
    ]
    assert json.loads((run_dir / "run_summary.json").read_text())["status"] == "ok"
    assert (run_dir / "stquant.log").read_text().count("operation_mode: quantization, run folder") == 1


def test_claim_fuzz_threads(tmp_path):
    """Seeded: threads claim one folder at random moments; at most one holds it at any time, each of the
    others is refused with a documented error, and a claim after the last run needs --overwrite."""
    rng = random.Random(19)
    config = load_config(write(tmp_path, demo_config(tmp_path)))
    outcomes: dict[str, int] = {}
    holders: list[int] = []
    overlaps: list[list[int]] = []
    lock = threading.Lock()
    expected = {
        InputError: "is in use by another stquant run; wait for it to end or choose another folder",
        ConfigError: "already holds a run (run_summary.json); choose another folder or add --overwrite",
    }

    def claim(number: int, delay: float, overwrite: bool) -> None:
        time.sleep(delay)
        try:
            with claimed_run_dir(config, tmp_path / "run", overwrite, ("quantized_models",)) as run_dir:
                with lock:
                    holders.append(number)
                    if len(holders) > 1:
                        overlaps.append(list(holders))
                time.sleep(rng.uniform(0, 0.01))
                (run_dir / "run_summary.json").write_text(str(number))
                with lock:
                    holders.remove(number)
            kind = "claimed"
        except (InputError, ConfigError) as exc:
            kind = (
                f"{type(exc).__name__} (exit {exc.exit_code})"
                if str(exc).endswith(expected[type(exc)])
                else f"unexpected: {exc}"
            )
        with lock:
            outcomes[kind] = outcomes.get(kind, 0) + 1

    for _ in range(25):
        threads = [threading.Thread(target=claim, args=(i, rng.uniform(0, 0.01), rng.random() < 0.5)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not overlaps
    assert sum(outcomes.values()) == 100 and outcomes.get("claimed", 0) >= 25, outcomes
    assert set(outcomes) <= {"claimed", "InputError (exit 3)", "ConfigError (exit 2)"}, outcomes
    print(f"claim fuzz: 100 claims, outcomes {outcomes}")


# ---------------------------------------------------------------- compare: one comparison per folder


def test_compare_into_a_folder_holding_a_comparison(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))
    run_dir = tmp_path / "cmp"
    for index in range(4):  # an earlier comparison of 4 variants
        (run_dir / f"variant_{index}" / "quantized_models").mkdir(parents=True)
        (run_dir / f"variant_{index}" / "quantized_models" / "quantized_model.tflite").write_bytes(b"old")
    (run_dir / "comparison.json").write_text("{}")
    (run_dir / "comparison.md").write_text("old")
    before = snapshot(run_dir)
    vary = ["--vary", "quantization.granularity=per_channel,per_tensor"]
    code, _, err = run_cli(capsys, "compare", config, *vary, "--output-dir", run_dir, "--progress", "none")
    assert code == 2 and error_lines(err) == [
        f"stquant: --output-dir: {run_dir} already holds a run (comparison.json); choose another folder or add "
        "--overwrite"
    ]
    assert snapshot(run_dir) == before
    code, _, err = run_cli(
        capsys, "compare", config, *vary, "--output-dir", run_dir, "--overwrite", "--progress", "none"
    )
    assert code == 0, err
    assert sorted(p.name for p in run_dir.glob("variant_*")) == ["variant_0", "variant_1"]
    assert len(json.loads((run_dir / "comparison.json").read_text())["variants"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--vary", "quantization.granularity=,,,"],
            "--vary quantization.granularity: an empty value in ',,,'; expected V1,V2",
        ),
        (
            ["--vary", "quantization.granularity=per_tensor,per_tensor"],
            "--vary quantization.granularity: per_tensor given twice; each value once",
        ),
        (
            ["--vary", "quantization.granularity=per_tensor", "--target-agreement", "150"],
            "--target-agreement 150.0: a percentage from 0 to 100",
        ),
        (
            ["--vary", "quantization.granularity=per_tensor", "--target-agreement", "nan"],
            "--target-agreement nan: a percentage from 0 to 100",
        ),
    ],
)
def test_compare_arguments(tmp_path, capsys, argv, message):
    code, _, err = run_cli(
        capsys, "compare", write(tmp_path, demo_config(tmp_path)), *argv, "--output-dir", tmp_path / "cmp"
    )
    assert code == 2 and error_lines(err) == [f"stquant: {message}"]
    assert not (tmp_path / "cmp").exists()


# ---------------------------------------------------------------- disk full


def test_disk_full_during_a_run_names_the_file(tmp_path, capsys):
    """A real full file system (tmpfs of 16 KiB): the model does not fit, the summary does."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        run_dir = mount / "run"
        code, _, err = run_cli(
            capsys, "run", write(tmp_path, demo_config(tmp_path)), "--output-dir", run_dir, "--progress", "none"
        )
        model = run_dir / "quantized_models" / "quantized_model.tflite"
        assert code == 3 and error_lines(err) == [f"stquant: cannot write {model}: No space left on device"]
        summary = json.loads((run_dir / "run_summary.json").read_text())
        assert summary["status"] == "failed" and str(model) in summary["error"]
        assert not model.exists() and not list(run_dir.rglob("*.part")) and not list(run_dir.rglob(".*.part"))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_file_size_limit_names_the_file(tmp_path):
    """RLIMIT_FSIZE in a child process (EFBIG, no root needed): an OutputError naming the file, nothing left."""
    target = tmp_path / "out" / "big.bin"
    script = (
        "import sys; from pathlib import Path; from engine.common.atomic import write_bytes_atomic; "
        "from engine.common.errors import OutputError\n"
        "try:\n    write_bytes_atomic(Path(sys.argv[1]), bytes(100_000))\n"
        "except OutputError as exc:\n    print(exc, exc.exit_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        env=ENV,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000)),
        timeout=60,
    )
    assert done.stdout.strip() == f"cannot write {target}: {os.strerror(errno.EFBIG)} 3", done.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == []
    assert OutputError.exit_code == 3


# ---------------------------------------------------------------- config files and overrides


def test_duplicate_keys_name_both_lines(tmp_path, capsys):
    text = Path(write(tmp_path, demo_config(tmp_path))).read_text()
    path = write(tmp_path, text + "general:\n  project_name: again\n", "dup.yaml")
    first = text.splitlines().index("general:") + 1
    last = len(text.splitlines()) + 1
    code, _, err = run_cli(capsys, "validate", path)
    assert code == 2 and error_lines(err) == [
        f"stquant: {path}:{last}: key general given twice (first at {path}:{first}); keep one"
    ]
    nested = write(
        tmp_path,
        "quantization:\n  granularity: per_tensor\n  quantizer: TFlite_converter\n  granularity: per_channel\n",
        "nested.yaml",
    )
    code, _, err = run_cli(capsys, "validate", nested)
    assert code == 2 and error_lines(err) == [
        f"stquant: {nested}:4: key quantization.granularity given twice (first at {nested}:2); keep one"
    ]


def test_override_nested_too_deep_and_huge_keys(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))
    deep = "general." + ".".join(["a"] * 900)
    code, _, err = run_cli(capsys, "validate", config, f"{deep}=1")
    assert code == 2 and error_lines(err) == [
        "stquant: command line: override 'general.a.a...' nests 901 keys deep (at most 50)"
    ]
    huge = "general." + "x" * 100_000
    code, _, err = run_cli(capsys, "validate", config, f"{huge}=1")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and len(lines[0]) < 500 and "xxx...: unknown key" in lines[0]


def validate_beside(fifo: Path, config: Path, capsys) -> tuple[int, str]:
    """`stquant validate config` in this process, in a thread that may not hang on `fifo`: (exit code, stderr). A
    validate still waiting after 60 s is released (the FIFO opened for writing, which ends a reader's wait) and fails
    the test."""
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(main(["validate", str(config)])))
    worker.start()
    worker.join(60)
    if worker.is_alive():
        with open(fifo, "wb"):
            pass
        worker.join()
        pytest.fail(f"validate waited on the FIFO {fifo}")
    return codes[0], capsys.readouterr().err


@pytest.mark.parametrize("which", ["model", "config"])
def test_fifo_is_refused_at_once(tmp_path, capsys, which):
    fifo = tmp_path / ("model.h5" if which == "model" else "cfg.yaml")
    os.mkfifo(fifo)
    config = (
        fifo
        if which == "config"
        else write(tmp_path, demo_config(tmp_path, general__model_path=str(fifo)), "real.yaml")
    )
    code, err = validate_beside(fifo, config, capsys)
    expected = (
        f"stquant: general.model_path: cannot read the model file {fifo} (not a regular file: a FIFO, device or socket)"
        if which == "model"
        else f"stquant: {fifo}: cannot read config file (not a regular file: a FIFO, device or socket)"
    )
    assert code == 3 and err.splitlines() == [expected]


def test_fifo_among_the_images_is_skipped(tmp_path, capsys):
    images = Path(shutil.copytree(DEMO / "digits", tmp_path / "digits"))
    os.mkfifo(images / "digit_1" / "stuck.png")
    config = write(tmp_path, demo_config(tmp_path, dataset__quantization_path=str(images)))
    code, err = validate_beside(images / "digit_1" / "stuck.png", config, capsys)
    assert code == 0 and err.splitlines() == [
        f"stquant: warning: dataset.quantization_path: skipped 2 non-image file(s) in {images}, "
        f"e.g. {images / 'digit_0' / 'notes.txt'}"
    ]


# ---------------------------------------------------------------- ONNX intermediates


def test_onnx_run_keeps_intermediates_in_their_folder_following_the_umask(tmp_path, capsys):
    previous = os.umask(0o022)
    try:
        config = demo_config(tmp_path, quantization__quantizer="Onnx_quantizer")
        run_dir = tmp_path / "run"
        code, _, err = run_cli(capsys, "run", write(tmp_path, config), "--output-dir", run_dir, "--progress", "none")
    finally:
        os.umask(previous)
    assert code == 0, err
    assert sorted(p.name for p in run_dir.iterdir()) == [
        LOCK_NAME,
        "config.yaml",
        "intermediates",
        "quantized_models",
        "run_summary.json",
        "stquant.log",
    ]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o644" for p in files}
    assert [p.name for p in (run_dir / "quantized_models").iterdir()] == ["converted_model_quant_qdq_pc.onnx"]


# ---------------------------------------------------------------- tampered statistics cache


def _entry_file() -> Path:
    entries = statistics_entries(cache_folder())
    assert len(entries) == 1
    return entries[0]


def _rewrite(path: Path, change) -> None:
    """Tamper with an entry's value, then give it a matching digest (a hostile edit, not a random one)."""
    from engine.quantize.cache import _digest

    stored = json.loads(path.read_text())
    stored.pop("digest")
    change(stored)
    path.write_text(json.dumps({**stored, "digest": _digest(stored)}))


def _swap(stored: dict) -> None:
    ranges = stored["value"]["ranges"]
    tensor = next(iter(ranges))
    low, high = ranges[tensor]
    ranges[tensor] = [high + 1.0, low]


def _set_range(pair) -> Callable[[dict], None]:
    return lambda stored: stored["value"]["ranges"].update({next(iter(stored["value"]["ranges"])): pair})


TAMPERS = {
    "min_above_max": _swap,
    "nan": _set_range([math.nan, 1.0]),
    "infinite": _set_range([-math.inf, 1.0]),
    "string_ranges": lambda stored: stored["value"].update(ranges="ranges"),
    "string_pair": _set_range("0,1"),
    "histograms_of_other_tensors": lambda stored: stored["value"].update(histograms={"999": None}),
}


def test_tampered_cache_entries_are_computed_again(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))

    def run(name: str) -> tuple[dict, str]:
        code, _, err = run_cli(capsys, "run", config, "--output-dir", tmp_path / name, "--progress", "none")
        assert code == 0, err
        return json.loads((tmp_path / name / "run_summary.json").read_text()), (
            tmp_path / name / "stquant.log"
        ).read_text()

    reference, log = run("reference")
    assert "corrupt" not in log
    assert reference["calibration"]["statistics"] == "computed"
    good = _entry_file().read_bytes()
    for name, change in TAMPERS.items():
        _rewrite(_entry_file(), change)
        summary, log = run(name)
        assert log.count("is corrupt; ignored (computing the statistics again)") == 1, (name, log)
        assert summary["calibration"]["statistics"] == "computed"
        assert summary["layer_errors"] == reference["layer_errors"], name
        assert _entry_file().read_bytes() == good  # stored anew, atomically
    cached, _ = run("cached")
    assert cached["calibration"]["statistics"] == "cache" and cached["layer_errors"] == reference["layer_errors"]


KINDS = ("truncate", "flip_byte", "flip_bit", "wrong_type", "swap_min_max", "drop_key", "empty")


def _mutations(rng: random.Random, text: bytes, kinds: tuple[str, ...] = KINDS) -> tuple[str, bytes]:
    kind = rng.choice(kinds)
    if kind == "truncate":
        return kind, text[: rng.randrange(len(text))]
    if kind in ("flip_byte", "flip_bit"):
        data = bytearray(text)
        index = rng.randrange(len(data))
        data[index] = rng.randrange(256) if kind == "flip_byte" else data[index] ^ (1 << rng.randrange(8))
        return kind, bytes(data)
    if kind == "empty":
        return kind, b""
    stored = json.loads(text)
    tensor = rng.choice(sorted(stored["value"]))
    if kind == "wrong_type":
        field = rng.choice(["value", "images", "skipped", "key", "pair"])
        junk = rng.choice(["text", None, 1.5, [], {}, True, [1, 2, 3]])
        if field == "pair":
            stored["value"][tensor] = junk
        else:
            stored[field] = junk
    elif kind == "swap_min_max":
        low, high = stored["value"][tensor]
        stored["value"][tensor] = [high, low] if low != high else [high + 1.0, low]
    else:
        stored.pop(rng.choice(["value", "images", "skipped", "digest", "key", "format"]))
    return kind, json.dumps(stored).encode()


def test_cache_fuzz(tmp_path, caplog):
    """Seeded: a real entry (the demo's ranges), tampered at random, is either served whole or ignored with
    a warning (the statistics are then computed again); never garbage, never an exception."""
    key = {"quantizer": "TFlite_converter", "model": "demo", "calibration": {"files": [["a.png", 1, 2]]}}
    value = {str(i): [-1.5 - i / 7, 2.25 + i / 3] for i in range(40)}
    outcomes = _fuzz(StatsCache(tmp_path / "cache"), key, value, TFLITE_RANGES, _mutations, caplog)
    print(f"cache fuzz: 600 tampered entries, outcomes {outcomes}")


def _model_mutations(rng: random.Random, text: bytes) -> tuple[str, bytes]:
    """The generic tampering of `_mutations`, and hostile edits of a kept .tflite (digest made to match)."""
    kind = rng.choice(["generic", "generic", "not_tflite", "not_base64", "wrong_field"])
    if kind == "generic":
        return _mutations(rng, text, ("truncate", "flip_byte", "flip_bit", "wrong_type", "drop_key", "empty"))
    stored = json.loads(text)
    stored.pop("digest")
    if kind == "not_tflite":
        data = bytearray(base64.b64decode(stored["value"]["tflite"]))
        data[4 + rng.randrange(4)] ^= 1 << rng.randrange(8)  # the file identifier, TFL3
        stored["value"]["tflite"] = base64.b64encode(bytes(data)).decode()
    elif kind == "not_base64":
        stored["value"]["tflite"] = rng.choice(["TFL3", "@" * 12, "", stored["value"]["tflite"][:-3]])
    else:
        stored["value"] = rng.choice([{}, {"tflite": None}, {"tflite": 3}, {**stored["value"], "extra": 1}])
    return kind, json.dumps({**stored, "digest": _digest(stored)}).encode()


def test_cache_fuzz_of_a_kept_quantized_model(tmp_path, caplog):
    """The same for a real quantized model kept by the TFLite converter (`QUANTIZED_MODEL`): served whole or ignored
    with a warning (the model is then converted again), never a model that is not the one stored."""
    tflite = _asset("models", "cifar10_resnet8", "pretrainedResnet_quant.tflite").read_bytes()
    key = {"quantized_from": "graph", "statistics_digest": "digest", "settings": {"granularity": "per_channel"}}
    value = {"tflite": base64.b64encode(tflite).decode("ascii")}
    outcomes = _fuzz(StatsCache(tmp_path / "cache"), key, value, QUANTIZED_MODEL, _model_mutations, caplog)
    print(f"cache fuzz (quantized model): 600 tampered entries, outcomes {outcomes}")


def _fuzz(cache: StatsCache, key: dict, value: object, shape, mutate, caplog) -> dict[str, int]:
    """Tamper with the entry of `value` 600 times (seeded); each read serves it whole or ignores it with a warning
    and removes it (an older format: silently)."""
    cache.put(key, value, images=120, skipped=1)
    good = cache.entry(key).read_bytes()
    expected = Entry(json.loads(json.dumps(value)), 120, 1)
    assert cache.get(key, shape) == expected
    rng = random.Random(1919)
    outcomes: dict[str, int] = {}
    for _ in range(600):
        kind, tampered = mutate(rng, good)
        cache.entry(key).write_bytes(tampered)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="engine.quantize.cache"):
            got = cache.get(key, shape)
        if got is None:
            assert "is corrupt" in caplog.text or "older format" in caplog.text, (kind, tampered)
            outcome = "recomputed (warning)" if "is corrupt" in caplog.text else "recomputed (older format)"
            assert not cache.entry(key).exists() or outcome.endswith("format)")
        else:
            assert got == expected, (kind, tampered)
            outcome = "served whole"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert sum(outcomes.values()) == 600 and outcomes.get("recomputed (warning)", 0) > 400, outcomes
    return outcomes
