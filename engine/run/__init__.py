"""Runs: the checks before a run (`preflight`), the stages of `stquant run` (`orchestrator`), `stquant compare`
(`compare`, its result in `comparison`), the run summary (`summary`), progress events and reporters
(`events`), and MLflow logging (`mlflow_log`).

May import every engine package below it; only `engine.cli` imports it.
"""
