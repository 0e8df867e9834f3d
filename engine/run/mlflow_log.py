"""Optional MLflow trail (params, metrics, the output folder as artifacts).

A failure raises EngineError with one line; the runner reports it as a warning (it never fails the run).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from engine.common.errors import EngineError, first_line

if TYPE_CHECKING:  # mlflow is optional: imported when logging
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

_missing_warned = False
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # 2+ letters: `C:` is a Windows drive, not a scheme


def is_uri(uri: str) -> bool:
    """True for a tracking URI MLflow takes as it is (`http://...`, `file:...`, `databricks`, `sqlite:...`)."""
    return bool(_SCHEME.match(uri)) or uri in ("databricks", "databricks-uc")


def store_folder(uri: str) -> Path | None:
    """The folder of a file store (ST's `mlflow.uri: ./experiments_outputs/mlruns`), None for a URI."""
    return None if is_uri(uri) else Path(uri).expanduser().resolve()


def log_run(
    uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float | None],
    artifacts_dir: Path,
) -> str | None:
    """Log one finished run to MLflow at `uri`; return its run id, or None if MLflow is not installed.

    Raises EngineError (one line naming the URI) when logging fails.
    """
    global _missing_warned
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        if not _missing_warned:
            log.warning("MLflow logging skipped: mlflow is not installed (pip install 'stquant[mlflow]')")
            _missing_warned = True
        return None
    store = store_folder(str(uri))
    if store is not None:
        # MLflow 3 refuses folder stores unless opted in; ST model zoo configs use a folder.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    run_id: str | None = None
    try:
        client = MlflowClient(tracking_uri=store.as_uri() if store else str(uri))
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(str(k), float(v), now, 0) for k, v in metrics.items() if v is not None],
            params=[Param(str(k), str(v)) for k, v in params.items()],
        )
        if Path(artifacts_dir).is_dir():
            _log_artifacts(client, run_id, Path(artifacts_dir).resolve(), store)
        client.set_terminated(run_id)
        return run_id
    except Exception as error:
        if run_id:
            try:
                client.set_terminated(run_id, status="FAILED")
            except Exception:  # noqa: BLE001 - the first failure is the one reported
                log.debug("could not mark MLflow run %s as failed", run_id)
        raise EngineError(f"MLflow logging to {uri} failed: {first_line(error)}") from error


def _log_artifacts(client: MlflowClient, run_id: str, artifacts_dir: Path, store: Path | None) -> None:
    """Log every entry of `artifacts_dir`, skipping the MLflow store itself when it lives inside."""
    for entry in sorted(artifacts_dir.iterdir()):
        if store is not None and store.is_relative_to(entry):
            continue
        if entry.is_dir():
            client.log_artifacts(run_id, str(entry), artifact_path=entry.name)
        else:
            client.log_artifact(run_id, str(entry))
