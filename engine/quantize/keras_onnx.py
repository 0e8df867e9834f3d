"""Keras -> ONNX with tf2onnx, in this process or in a spawned child that takes TensorFlow's memory with it.

The ONNX route of a Keras model needs TensorFlow only to convert. When nothing else in the process has imported
TensorFlow, `convert_apart` loads and converts the model in a child process: when ONNX Runtime calibrates, the
TensorFlow runtime (hundreds of MiB) is gone instead of sitting under the calibration's own memory.
"""

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from engine.common.atomic import atomic_path
from engine.common.child import become_child
from engine.common.errors import EngineError, StquantError, first_line
from engine.models.files import stored_code_trusted, trust_stored_code
from engine.models.library_internals import KERAS_METADATA, tf2onnx_optimizers_unguarded
from engine.models.load import load_keras_model
from engine.models.trace import traced
from engine.quantize.common import ModelMemo

log = logging.getLogger(__name__)


def tensorflow_loaded() -> bool:
    """Whether this process has imported TensorFlow (then converting in a child saves nothing)."""
    return "tensorflow" in sys.modules


def keras_to_onnx(model: Any, opset: int, out_path: Path, model_path: Path, memo: ModelMemo | None = None) -> Path:
    """Convert a loaded Keras model (from `model_path`) to ONNX at `opset` with an NCHW input, atomically.
    `memo`: its trace is converted when it is of this model (else the trace made here is kept in it).

    The ONNX model records which Keras made it (metadata `KERAS_METADATA`), so that the per-layer
    report can map its node names back to Keras layer names.
    """
    import tf2onnx

    from engine.models.library_internals import is_keras3

    if len(model.inputs) != 1:
        raise EngineError(f"{model_path}: the model has {len(model.inputs)} inputs; an image classifier has one")
    try:
        trace = traced(model, memo.trace if memo is not None else None)
    except Exception as error:  # noqa: BLE001 - tf2onnx would have traced it: its failure as one line too
        raise _conversion_failed(model_path, error) from None
    if memo is not None:
        memo.trace = trace
    _, serve, concrete = trace
    spec, name = serve.input_signature, concrete.inputs[0].name

    def convert() -> Any:
        return tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset, inputs_as_nchw=[name])[0]

    try:
        with tf2onnx_optimizers_unguarded():
            converted = convert()
    except Exception as error:  # noqa: BLE001 - an optimizer pass failed (or the conversion): tf2onnx's own way
        log.debug("tf2onnx without its optimizer guard failed (%s): converting with it", first_line(error))
        try:
            converted = convert()
        except Exception as error:  # noqa: BLE001 - one line instead of a tf2onnx traceback
            raise _conversion_failed(model_path, error) from None
    converted.metadata_props.add(key=KERAS_METADATA, value="3" if is_keras3(model) else "2")
    save_onnx(converted, out_path)
    log.info("converted %s to ONNX opset %d: %s", model_path.name, opset, out_path)
    return out_path


def _conversion_failed(model_path: Path, error: Exception) -> EngineError:
    return EngineError(f"{model_path}: tf2onnx conversion failed: {first_line(error)}")


def save_onnx(model: Any, out: Path) -> None:
    """Write an ONNX ModelProto to `out` atomically."""
    import onnx

    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))


def convert_apart(model_path: Path, opset: int, out_path: Path) -> Path:
    """Load the Keras file `model_path` and convert it (`keras_to_onnx`) in a spawned child process.

    The child's expected errors are raised here as they are (same message and exit code); the child ignores
    Ctrl-C (the caller handles it) and is killed if this process ends first.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    args = (model_path, opset, out_path, stored_code_trusted(), os.getpid(), send)
    child = context.Process(target=_convert_child, args=args, daemon=True)
    try:
        with _signals_held():
            child.start()
        send.close()
        error = receive.recv()
    except EOFError:
        raise EngineError(
            f"{model_path}: the process converting it to ONNX ended without an answer (exit code {child.exitcode})"
        ) from None
    finally:
        send.close()
        receive.close()
        _end(child)
    if error is not None:
        raise error
    log.info("converted %s to ONNX in a child process (TensorFlow never loaded here)", model_path.name)
    return out_path


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a child starts (they are delivered right after): an interrupt inside the
    launch would leave a child that nothing ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _end(child: BaseProcess) -> None:
    """Kill the child if it still runs, and reap it."""
    if child.pid is None:
        return
    if child.is_alive():
        child.kill()
    child.join()


def _convert_child(model_path: Path, opset: int, out_path: Path, trusted: bool, parent: int, send: Connection) -> None:
    """The child: one conversion, its outcome sent back (None, or the error to raise)."""
    become_child()
    if os.getppid() != parent:
        return  # the parent died while this process started, before the line above could tie the two
    trust_stored_code(trusted)
    try:
        keras_to_onnx(load_keras_model(model_path), opset, out_path, model_path)
        outcome: StquantError | None = None
    except StquantError as error:
        outcome = error
    except Exception as error:  # noqa: BLE001 - anything else, as one line
        outcome = EngineError(f"{model_path}: ONNX conversion failed: {first_line(error)}")
    send.send(outcome)
    send.close()
