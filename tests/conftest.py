"""Shared fixtures: paths to the real model-zoo assets (skipped when absent) and the bundled demo."""

import compileall
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
DEMO = ROOT / "sample_configs" / "demo"
pytest_plugins = ["tests.gc_freeze", "tests.untouched_checkout"]  # see each module


@pytest.fixture(autouse=True)
def _own_statistics_cache(tmp_path_factory, monkeypatch):
    """Each test (and the stquant processes it starts) gets an empty statistics cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))


def _asset(*parts: str) -> Path:
    path = ASSETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real model-zoo assets not found at {path} (see ../shared/assets/README.md)")
    return path


@pytest.fixture
def flowers_h5() -> Path:
    return _asset("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft.h5")


@pytest.fixture
def flowers_st_tflite() -> Path:
    return _asset("models", "flowers_mobilenet_v2_0.35_128_fft", "mobilenet_v2_0.35_128_fft_int8.tflite")


@pytest.fixture
def flowers_onnx() -> Path:
    return _asset("models", "flowers_onnx", "mobilenet_v2_0.35_128_tfs_channel_first.onnx")


@pytest.fixture
def flower_photos() -> Path:
    return _asset("datasets", "flower_photos")


@pytest.fixture
def assets() -> Path:
    return _asset()


@pytest.fixture
def food101_model() -> Path:
    return _asset("models", "food101_efficientnet_lc_v1_128")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding integration tests (`slow`: real model-zoo runs) first, each file's tests kept in their order:
    `pytest -n 2 --dist loadfile` then hands the long files out first and ends on short ones, not on a long tail."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    first_seen: dict[Path, int] = {}
    for item in items:
        first_seen.setdefault(item.path, len(first_seen))
    items.sort(key=lambda item: (item.path not in slow_files, first_seen[item.path]))


def pytest_configure(config: pytest.Config) -> None:
    """Compile the engine and the wizard once (the controller, not each xdist worker): the many processes the tests
    start (engine runs, the wizard's checks) then load bytecode even where PYTHONDONTWRITEBYTECODE is set, instead of
    each compiling every module again."""
    if not hasattr(config, "workerinput"):
        for package in ("engine", "stquant_tui"):
            compileall.compile_dir(ROOT / package, quiet=1)


@pytest.fixture
def litert_threads(monkeypatch) -> list[tuple[str, int | None]]:
    """Every LiteRT interpreter made from now on, as (the model file's name or "content", num_threads given)."""
    from ai_edge_litert import interpreter

    made = []

    class Recorded(interpreter.Interpreter):
        def __init__(self, model_path=None, model_content=None, num_threads=None, **kwargs):
            made.append((Path(model_path).name if model_path else "content", num_threads))
            super().__init__(model_path=model_path, model_content=model_content, num_threads=num_threads, **kwargs)

    monkeypatch.setattr(interpreter, "Interpreter", Recorded)
    return made
