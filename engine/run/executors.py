"""Where the cells of `stquant sweep` run: a process pool on this machine, or Ray tasks on a cluster.

Both run one module-level function (`work`) per cell in long-lived worker processes, so TensorFlow is
imported once per worker, and hand back `concurrent.futures.Future`s. A worker process that dies mid-cell:
the local pool is rebuilt and the caller resubmits the cell once (`retries_lost`); Ray retries the task once
itself (`max_retries=1`) and then fails its future with a `RayError`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import FrameType
from typing import Any

from engine.common.errors import ConfigError, InputError

# What a TensorFlow process running one cell needs: the `--jobs` default and each Ray task's reservation.
CPUS_PER_CELL = 1
MEMORY_PER_CELL = 2 * 2**30  # bytes
# Environment a Ray worker of a cluster at --address takes from the driver (the statistics cache's folder, TensorFlow's
# Keras and logs). The workers of the local cluster a sweep starts inherit the driver's whole environment: no runtime
# environment for them, so the worker Ray starts with the cluster runs the cells (with one, Ray starts another).
FORWARDED_ENV = (
    "XDG_CACHE_HOME",
    "STQUANT_CACHE_MAX_MB",
    "TF_USE_LEGACY_KERAS",
    "TF_CPP_MIN_LOG_LEVEL",
    "GRPC_VERBOSITY",
    "ABSL_MIN_LOG_LEVEL",
)
ADDRESS_TIMEOUT = 10.0  # seconds to wait for a Ray cluster's address to answer
RAY_MISSING = "--executor ray: Ray is not installed; install the extra: pip install 'stquant[ray]'"
Work = Callable[..., Any]


def default_jobs() -> int:
    """Cells at once on this machine: one per CPU core this process may use, at most one per
    MEMORY_PER_CELL of available memory, at least one."""
    cores = len(os.sched_getaffinity(0)) // CPUS_PER_CELL
    return max(1, min(cores, available_memory() // MEMORY_PER_CELL))


def available_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (else the physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


_stopping = False  # in a local worker: Ctrl-C came
_busy = False  # in a local worker: inside `interruptible()`


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _stopping
    _stopping = True
    if _busy:
        raise KeyboardInterrupt


def _worker_setup() -> None:
    """A local worker notes Ctrl-C; inside `interruptible()` it also raises KeyboardInterrupt (a cell's run
    installs its own handler while it lasts)."""
    signal.signal(signal.SIGINT, _on_sigint)


def stopping() -> bool:
    """True in a local worker once the sweep was interrupted: a cell not started yet must not start."""
    return _stopping


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """In a local worker, Ctrl-C raises KeyboardInterrupt within the block (outside it, it is only noted)."""
    global _busy
    _busy = True
    try:
        if _stopping:
            raise KeyboardInterrupt
        yield
    finally:
        _busy = False


class LocalPool:
    """`jobs` worker processes (spawned: no state of the driver is forked), each running many cells."""

    retries_lost = True

    def __init__(self, work: Work, jobs: int) -> None:
        self.work, self.slots = work, jobs
        self._pool = self._new_pool()
        self._futures: list[Future[Any]] = []

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.slots, mp_context=context, initializer=_worker_setup)

    def submit(self, *args: Any) -> Future[Any]:
        """Run `work(*args)` in a worker; a pool broken by a lost worker is replaced first."""
        try:
            future = self._pool.submit(self.work, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(self.work, *args)
        self._futures.append(future)
        return future

    def stop(self) -> None:
        """Cancel the cells not started, interrupt the running ones (they write their record) and wait."""
        for future in self._futures:
            future.cancel()
        for child in multiprocessing.active_children():
            if child.pid is not None:
                os.kill(child.pid, signal.SIGINT)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def import_ray() -> Any:
    """The `ray` module; ConfigError (exit 2) naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def check_address(address: str) -> None:
    """InputError (exit 3) unless something listens at a Ray address (`host:port` or `ray://host:port`; `auto`
    is left to Ray): `ray.init` would wait minutes for a cluster that is not there."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=ADDRESS_TIMEOUT):
            pass
    except ValueError:
        raise ConfigError(f"--address {address}: expected HOST:PORT or ray://HOST:PORT") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"--address {address}: no Ray cluster answers there ({reason})") from None


def missing_paths(paths: dict[str, str]) -> dict[str, str]:
    """The entries of `paths` (what -> path) that do not exist where this runs (a Ray worker)."""
    return {what: path for what, path in paths.items() if not os.path.exists(path)}


class RayPool:
    """Each cell a Ray task reserving CPUS_PER_CELL and MEMORY_PER_CELL, retried once if its worker is lost.

    `address`: a running cluster (`ray start --head` ...); None starts a local one with `jobs` CPUs."""

    retries_lost = False  # Ray retries the task itself

    def __init__(self, work: Work, jobs: int, address: str | None) -> None:
        ray = import_ray()
        self._ray = ray
        env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
        if address is None:  # a cell Ray's memory monitor kills is retried once too, not forever (its default)
            os.environ.setdefault("RAY_task_oom_retries", "1")
        ray.init(
            address=address,
            num_cpus=jobs * CPUS_PER_CELL if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": env} if address is not None else None,
        )
        resources = ray.cluster_resources()
        self.slots = min(
            int(resources.get("CPU", 0)) // CPUS_PER_CELL, int(resources.get("memory", 0)) // MEMORY_PER_CELL
        )
        if self.slots < 1:  # no cell could ever be scheduled: Ray would wait for one forever
            ray.shutdown()
            raise InputError(
                f"--executor ray: the Ray cluster has {resources.get('CPU', 0):g} CPUs and "
                f"{resources.get('memory', 0) / 2**30:.1f} GiB of memory for tasks; a cell needs {CPUS_PER_CELL} CPU "
                f"and {MEMORY_PER_CELL / 2**30:g} GiB"
            )
        self._task = ray.remote(work).options(
            num_cpus=CPUS_PER_CELL, memory=MEMORY_PER_CELL, max_retries=1, retry_exceptions=False
        )
        self._refs: list[Any] = []

    def check_paths(self, paths: dict[str, str]) -> None:
        """InputError (exit 3) naming the first path a Ray worker cannot see."""
        probe = self._ray.remote(missing_paths).options(num_cpus=0)
        missing = self._ray.get(probe.remote(paths))
        if missing:
            what, path = next(iter(missing.items()))
            raise InputError(
                f"--executor ray: {path} ({what}) does not exist on the Ray cluster's nodes; configs, models, "
                "datasets, the sweep folder and the statistics cache must be on storage every node mounts at the "
                "same path"
            )

    def submit(self, *args: Any) -> Future[Any]:
        ref = self._task.remote(*args)
        self._refs.append(ref)
        future: Future[Any] = ref.future()
        return future

    def stop(self) -> None:
        """Cancel every cell not finished (a running one gets a KeyboardInterrupt), then leave the cluster."""
        for ref in self._refs:
            self._ray.cancel(ref)
        self.close()

    def close(self) -> None:
        self._ray.shutdown()


Pool = LocalPool | RayPool
