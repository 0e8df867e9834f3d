"""MLflow trail into a temporary folder store; a failure is one line (the run makes it a warning)."""

import logging
import sys
from pathlib import Path

import pytest

from engine.common.errors import EngineError
from engine.run.mlflow_log import is_uri, log_run, store_folder


@pytest.fixture
def outputs(tmp_path) -> Path:
    folder = tmp_path / "experiments_outputs" / "2025_01_01_00_00_00"
    (folder / "quantized_models").mkdir(parents=True)
    (folder / "stquant.log").write_text("accuracy 91.0 %\n")
    (folder / "quantized_models" / "quantized_model.tflite").write_bytes(b"\x00" * 16)
    return folder


def test_run_is_logged_with_params_metrics_and_artifacts(tmp_path, outputs):
    pytest.importorskip("mlflow", reason="mlflow is an optional extra (pip install 'stquant[mlflow]')")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "experiments_outputs" / "mlruns"
    run_id = log_run(
        str(store),
        "tf_flowers",
        outputs.name,
        {"operation_mode": "chain_eqe", "model_path": "model.h5"},
        {"float_acc_test_set": 91.83, "int_acc_test_set": 91.01, "skipped": None},
        outputs,
    )
    assert run_id
    client = MlflowClient(tracking_uri=store.as_uri())
    run = client.get_run(run_id)
    assert run.info.run_name == outputs.name and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tf_flowers"
    assert run.data.params == {"operation_mode": "chain_eqe", "model_path": "model.h5"}
    assert run.data.metrics == {"float_acc_test_set": 91.83, "int_acc_test_set": 91.01}
    assert {a.path for a in client.list_artifacts(run_id)} == {"quantized_models", "stquant.log"}
    nested = [a.path for a in client.list_artifacts(run_id, "quantized_models")]
    assert nested == ["quantized_models/quantized_model.tflite"]
    # a second run lands in the same experiment
    second = log_run(str(store), "tf_flowers", "again", {}, {"x": 1}, outputs)
    assert client.get_run(second).info.experiment_id == run.info.experiment_id


def test_store_inside_the_output_folder_is_not_logged_into_itself(outputs):
    pytest.importorskip("mlflow", reason="mlflow is an optional extra (pip install 'stquant[mlflow]')")
    from mlflow.tracking import MlflowClient

    store = outputs / "mlruns"
    run_id = log_run(str(store), "nested", "run", {}, {"acc": 1.0}, outputs)
    paths = {a.path for a in MlflowClient(tracking_uri=store.as_uri()).list_artifacts(run_id)}
    assert paths == {"quantized_models", "stquant.log"}


def test_mlflow_failure_is_one_line_naming_the_store(tmp_path, outputs):
    """log_run raises; the runner turns it into a warning (tests/test_run_resilience.py)."""
    pytest.importorskip("mlflow", reason="mlflow is an optional extra (pip install 'stquant[mlflow]')")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the store folder should be")
    with pytest.raises(EngineError, match=f"MLflow logging to {blocker} failed: ") as raised:
        log_run(str(blocker), "exp", "run", {}, {"acc": 1.0}, outputs)
    assert "\n" not in str(raised.value)
    assert blocker.read_text() == "a file where the store folder should be"


@pytest.mark.parametrize(
    ("uri", "is_a_uri"),
    [
        ("http://127.0.0.1:5000", True),
        ("https://mlflow.example.com", True),
        ("file:///tmp/mlruns", True),
        ("file:mlruns", True),
        ("databricks", True),
        ("databricks://profile", True),
        ("sqlite:///mlflow.db", True),
        ("./experiments_outputs/mlruns", False),
        ("mlruns", False),
        ("/abs/mlruns", False),
        ("C:/mlruns", False),
        ("~/mlruns", False),
    ],
)
def test_uris_are_told_from_folders(uri, is_a_uri):
    assert is_uri(uri) is is_a_uri
    assert (store_folder(uri) is None) is is_a_uri


def test_without_mlflow_the_run_is_skipped_with_one_warning(tmp_path, outputs, caplog, monkeypatch):
    import engine.run.mlflow_log

    for module in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import mlflow...` raise ImportError
    monkeypatch.setattr(engine.run.mlflow_log, "_missing_warned", False)
    with caplog.at_level(logging.WARNING, logger="engine.run.mlflow_log"):
        assert log_run(str(tmp_path / "mlruns"), "exp", "run", {}, {}, outputs) is None
        assert log_run(str(tmp_path / "mlruns"), "exp", "run", {}, {}, outputs) is None
    assert [r.getMessage() for r in caplog.records] == [
        "MLflow logging skipped: mlflow is not installed (pip install 'stquant[mlflow]')"
    ]
    assert not (tmp_path / "mlruns").exists()
