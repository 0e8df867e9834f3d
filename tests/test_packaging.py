"""The built wheel on its own: installed outside the source tree, its quick start and its wizard work.

The wheel is built from a copy of the source (nothing is written into the working tree), installed with
`pip install --no-deps --target`, and run from an empty folder with only that target on PYTHONPATH, so
the installed copy, not the checkout, is what runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

import engine
from engine.demo import write_demo
from tests.conftest import ROOT
from tests.test_cli_errors import run_cli

SOURCE = ("pyproject.toml", "README.md", "engine", "stquant_tui", "sample_configs")
SAMPLE_CONFIGS = sorted(path.name for path in (ROOT / "sample_configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the source, installed into a folder of its own (the folder)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("stquant-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(work / "site"), str(wheel)], check=True, capture_output=True
    )
    return work / "site"


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` from `cwd` with only the installed copy on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_installed_copy_is_the_one_imported_and_has_one_version(installed: Path, tmp_path: Path) -> None:
    probe = "import engine, importlib.metadata as m; print(engine.__file__); print(m.version('stquant'))"
    proc = run_installed(installed, tmp_path, "-c", probe)
    assert proc.returncode == 0, proc.stderr
    module_file, metadata_version = proc.stdout.split()
    assert Path(module_file).is_relative_to(installed)
    assert metadata_version == engine.__version__
    cli = run_installed(installed, tmp_path, "-m", "engine", "--version")
    assert (cli.returncode, cli.stdout.strip()) == (0, f"stquant {engine.__version__}")


@pytest.mark.slow
def test_quick_start_runs_on_the_shipped_demo(installed: Path, tmp_path: Path) -> None:
    demo = run_installed(installed, tmp_path, "-m", "engine", "demo", "my-demo")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.split() == [str(tmp_path / "my-demo" / name) for name in SAMPLE_CONFIGS]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = run_installed(
        installed,
        elsewhere,
        "-m",
        "engine",
        "run",
        str(tmp_path / "my-demo" / "quantization_config.yaml"),
        "--output-dir",
        "run",
        "--progress",
        "none",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == str(elsewhere / "run")
    summary = json.loads((elsewhere / "run" / "run_summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["model"] == str(tmp_path / "my-demo" / "demo" / "digits_cnn.h5")
    assert Path(summary["quantized_model"]).is_file()


@pytest.mark.slow
def test_wizard_opens_the_shipped_demo_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    probe = textwrap.dedent("""
        import asyncio
        from stquant_tui.app import StquantApp

        async def main():
            app = StquantApp()
            async with app.run_test(size=(80, 24)):
                print(app.draft.path)
                print(app.draft.resolve(app.draft.get("general.model_path")))
                print(app.draft.resolve(app.draft.get("dataset.quantization_path")))
                print(app.out_path)

        asyncio.run(main())
    """)
    proc = run_installed(installed, tmp_path, "-c", probe)
    assert proc.returncode == 0, proc.stderr
    config, model, images, save_to = proc.stdout.split()
    assert Path(config) == installed / "engine" / "demo" / "sample_configs" / "quantization_config.yaml"
    assert Path(model).is_file() and Path(model).is_relative_to(installed)
    assert Path(images).is_dir() and Path(images).is_relative_to(installed)
    assert save_to == "stquant_config.yaml"  # Save proposes a file of the working folder, never the package's
    help_proc = run_installed(installed, tmp_path, "-m", "stquant_tui", "--help")
    assert help_proc.returncode == 0 and "stquant-tui" in help_proc.stdout


def test_demo_refuses_a_folder_that_holds_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "demo", str(tmp_path))
    assert code == 2
    assert err == f"stquant: {tmp_path}: already exists and is not an empty folder; give a new folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_demo_into_an_empty_folder_follows_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    old = os.umask(0o077)
    try:
        configs = write_demo(target)
    finally:
        os.umask(old)
    assert [path.name for path in configs] == SAMPLE_CONFIGS
    assert (target / "demo" / "digits_cnn.h5").read_bytes() == (
        ROOT / "sample_configs" / "demo" / "digits_cnn.h5"
    ).read_bytes()
    assert {oct(path.stat().st_mode & 0o777) for path in target.rglob("*")} == {"0o600", "0o700"}
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging folder left


def test_snapshot_pins_match_the_installed_textual() -> None:
    """The dev extra's Textual range holds the release the SVG snapshots were recorded with."""
    import tomllib

    from packaging.requirements import Requirement

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pins = {Requirement(line).name: Requirement(line).specifier for line in dev}
    for name in ("textual", "pytest-textual-snapshot", "syrupy"):
        assert version(name) in pins[name], f"{name} {version(name)} is outside the dev pin {pins[name]}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """`.ci/run` ends with the README's test command, which shows the fifteen slowest tests."""
    readme = (ROOT / "README.md").read_text()
    command = readme.split("To run the tests", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == command
    assert command.endswith(" && pytest -n 2 --dist loadfile --durations=15")
