"""Run a Keras, ONNX or TFLite classifier on batches of preprocessed NHWC float32 images."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.common.errors import EngineError, InputError, first_line
from engine.common.threads import usable_cores
from engine.data.preprocess import ImageSpec
from engine.models.files import KERAS_SUFFIXES, check_model_file
from engine.models.info import guess_layout
from engine.models.library_internals import is_keras3
from engine.models.load import KerasModel, load_keras_model
from engine.models.trace import Trace

log = logging.getLogger(__name__)

X86_MACHINES = {"x86_64", "amd64", "i386", "i686", "x86"}
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"}


def onnx_int8_saturation_warning(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """Why ONNX Runtime's int8 (U8S8) kernels would saturate here (x86 without VNNI), or None."""
    if platform.machine().lower() not in X86_MACHINES:
        return None
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
    if flags & VNNI_FLAGS:
        return None
    return "this x86 CPU lacks VNNI (avx512_vnni/avx_vnni): ONNX Runtime's int8 kernels may saturate"


class Predictor(Protocol):
    """A loaded classifier: float32 NHWC batch (N, H, W, C) in, float scores (N, classes) out."""

    runtime: str
    path: Path
    input_hw_c: tuple[int, int, int]
    trace: Trace | None  # a Keras model's trace, once converted to run as TFLite (its quantizer reuses it), else None
    keras_model: KerasModel  # the loaded Keras model a KerasPredictor runs (its quantizer reuses it), else None

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


def load_predictor(model_path: Path | str, num_threads: int | None = None, fast_float: bool = False) -> Predictor:
    """Load `model_path` (.h5/.keras, .onnx or .tflite) with the runtime that matches its extension.

    `fast_float`: run a Keras model through a float32 TFLite conversion of the same traced function
    (LiteRT with XNNPACK; the same outputs up to float rounding, faster on large evaluation sets).
    """
    path = check_model_file(Path(model_path))
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return KerasPredictor(path, num_threads, fast_float)
    if suffix == ".onnx":
        return OnnxPredictor(path, num_threads)
    if suffix == ".tflite":
        return TFLitePredictor(path, num_threads)
    raise InputError(f"unsupported model extension '{path.suffix}' (expected .h5, .keras, .onnx or .tflite): {path}")


def predict_pixels(predictor: Predictor, pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Scores for a batch of uint8 pixels that the model sees as `spec.rescale(pixels)` (same values).

    TFLite models (and Keras ones run through their float TFLite trace) look the input values up in a
    256-entry table instead of rescaling and quantizing the whole batch in float.
    """
    fast = getattr(predictor, "predict_pixels", None)
    return fast(pixels, spec) if fast is not None else predictor.predict(spec.rescale(pixels))


def as_class_scores(scores: np.ndarray) -> np.ndarray:
    """Flatten raw outputs to (N, classes) float32; a single sigmoid unit p becomes [1 - p, p]."""
    scores = np.asarray(scores, dtype=np.float32).reshape(len(scores), -1)
    if scores.shape[1] == 1:
        return np.concatenate([1.0 - scores, scores], axis=1)
    return scores


def _check_batch(batch: np.ndarray, input_hw_c: tuple[int, int, int], path: Path) -> np.ndarray:
    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim != 4 or tuple(batch.shape[1:]) != input_hw_c:
        raise EngineError(f"{path} expects images of shape {input_hw_c} (H, W, C), got a batch of shape {batch.shape}")
    return batch


class KerasPredictor:
    """A Keras 3 or tf_keras model, run one batch per call."""

    def __init__(self, path: Path, num_threads: int | None = None, fast_float: bool = False, model: Any = None):
        """`model`: the Keras model of `path` when the caller has it loaded already (else it is loaded here)."""
        import tensorflow as tf

        if num_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(num_threads)
            except RuntimeError:
                log.debug("TensorFlow already initialised: keeping its thread settings")
        self.path = path
        self.keras_model = model if model is not None else load_keras_model(path)
        shape = tuple(self.keras_model.inputs[0].shape)
        if len(shape) != 4:
            raise InputError(f"{path} is not an image classifier: input shape {shape}, expected (N, H, W, C)")
        self.input_hw_c = (int(shape[1]), int(shape[2]), int(shape[3]))
        self.keras_runtime = self.runtime = keras_runtime(is_keras3(self.keras_model))
        self.num_threads = num_threads
        self.converted: TFLitePredictor | None = None
        self.trace: Trace | None = None  # the model's trace, once `run_as_tflite` converted it (for its quantizer)
        if fast_float:
            self.run_as_tflite()

    def run_as_tflite(self, content: bytes | None = None, trace: Trace | None = None) -> None:
        """From now on run the model as a float32 TFLite graph (LiteRT, XNNPACK): `content` when given
        (the float model the TFLite converter calibrated), else a conversion of the traced model (`trace` when it is
        of this model). Should the conversion fail, the model keeps running in Keras."""
        from engine.models.trace import float_tflite, traced

        try:
            if not content:
                self.trace = traced(self.keras_model, trace)
            graph = content or float_tflite(self.keras_model, self.trace)
            converted = TFLitePredictor(self.path, self.num_threads, content=graph)
        except Exception as error:  # noqa: BLE001 - any conversion failure: keep running in Keras
            log.info(
                "%s: float TFLite conversion failed (%s); evaluating in Keras", self.path.name, error.__class__.__name__
            )
            return
        self.runtime = float_graph_runtime(converted.runtime, self.keras_runtime, bool(content))
        self.converted = converted

    def predict_pixels(self, pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
        if self.converted is not None:
            return self.converted.predict_pixels(pixels, spec)
        return self.predict(spec.rescale(pixels))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.converted is not None:
            return self.converted.predict(batch)
        batch = _check_batch(batch, self.input_hw_c, self.path)
        outputs = self.keras_model.predict_on_batch(batch)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        elif isinstance(outputs, dict):
            outputs = next(iter(outputs.values()))
        return as_class_scores(np.asarray(outputs))


def keras_runtime(keras3: bool) -> str:
    """How a Keras model runs (`keras3`: a Keras 3 model): "TensorFlow 2.x (tf_keras)" or "TensorFlow 2.x (Keras 3.y)".

    The versions are the installed distributions' (a run that needs no TensorFlow does not import it to name it)."""
    from importlib.metadata import version

    tf_version = ".".join(version("tensorflow").split(".")[:2])
    if keras3:
        return f"TensorFlow {tf_version} (Keras {'.'.join(version('keras').split('.')[:2])})"
    return f"TensorFlow {tf_version} (tf_keras)"


def float_graph_runtime(litert: str, keras: str, for_quantization: bool) -> str:
    """The runtime of a Keras model (`keras`: its `keras_runtime`) evaluated as a float32 .tflite on LiteRT (`litert`:
    its `TFLitePredictor.runtime`): the graph the TFLite converter calibrated (`for_quantization`) or a conversion of
    the traced model."""
    how = "as converted for quantization" if for_quantization else "traced"
    return f"{litert} XNNPACK, float32 graph of {keras} ({how})"


class OnnxPredictor:
    """An ONNX model (float or QDQ) on ONNX Runtime's CPU provider; NCHW inputs are transposed for it."""

    trace: Trace | None = None  # not a Keras model
    keras_model: KerasModel = None

    def __init__(self, path: Path, num_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        emulated = _qdq_needs_emulation(path)
        if emulated:
            # Without QDQ fusion every QDQ node runs as written: each op computes in float on dequantized
            # int8 values and the next QuantizeLinear rounds its output (fake quantization, not the integer
            # kernels of an MCU; see benchmarks/qdq_emulation.py for how far apart the two are).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise InputError(f"cannot load ONNX model {path}: {first_line(error)}") from error
        self.path = path
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        dims = [d if isinstance(d, int) and d > 0 else None for d in model_input.shape]
        if len(dims) != 4:
            raise InputError(f"{path} is not an image classifier: input shape {model_input.shape}, expected 4-D")
        self.channels_first = guess_layout(dims, "onnx") == "NCHW"
        height, width, channels = (dims[2], dims[3], dims[1]) if self.channels_first else (dims[1], dims[2], dims[3])
        if height is None or width is None or channels is None:
            raise InputError(f"{path} has a dynamic image size {model_input.shape}: export it with a fixed H, W, C")
        self.input_hw_c = (height, width, channels)
        self.fixed_batch = dims[0]
        self.runtime = f"ONNX Runtime {'.'.join(ort.__version__.split('.')[:2])} {self.session.get_providers()[0]}"
        if emulated:
            self.runtime += " (QDQ fake-quantized in float: int8 kernels off, no VNNI)"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = _check_batch(batch, self.input_hw_c, self.path)
        if self.channels_first:
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.fixed_batch is None:
            return as_class_scores(self._run(batch))
        step = self.fixed_batch
        chunks = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            chunks.append(self._run(padded)[: len(chunk)])
        return as_class_scores(np.concatenate(chunks))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])


def _qdq_needs_emulation(path: Path) -> bool:
    """A QDQ model on a CPU whose int8 kernels saturate: say so once and run it fake-quantized instead."""
    from engine.models.info import describe_model

    warning = onnx_int8_saturation_warning()
    if warning is None or not describe_model(path).quantized:
        return False
    log.warning("%s; evaluating %s with int8 kernel fusion off (fake-quantized in float, slower)", warning, path.name)
    return True


class TFLitePredictor:
    """A TFLite model on the LiteRT interpreter; integer inputs are quantized and integer outputs dequantized.

    `threads`: the interpreter's threads, `num_threads` or every usable core; one once XNNPACK cannot run the graph
    (LiteRT's built-in kernels spin their idle threads: more of them cost CPU and, on a busy machine, wall time).
    """

    trace: Trace | None = None  # not a Keras model
    keras_model: KerasModel = None

    def __init__(self, path: Path, num_threads: int | None = None, content: bytes | None = None):
        from importlib.metadata import version

        self._source = {"model_content": content} if content is not None else {"model_path": str(path)}
        self.threads = num_threads or usable_cores()
        try:
            self.interpreter = self._interpreter(delegate=True)
            self.interpreter.allocate_tensors()
        except Exception as error:
            raise InputError(f"cannot load TFLite model {path}: {first_line(error)}") from error
        self.path = path
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        shape = tuple(int(d) for d in self.input["shape"])
        if len(shape) != 4:
            raise InputError(f"{path} is not an image classifier: input shape {shape}, expected (N, H, W, C)")
        self.input_hw_c = (shape[1], shape[2], shape[3])
        self.resizable = int(self.input["shape_signature"][0]) == -1
        self.batch_size = shape[0]
        self.runtime = f"LiteRT {'.'.join(version('ai-edge-litert').split('.')[:2])}"
        self._table: np.ndarray | None = None
        self._table_spec: ImageSpec | None = None
        self._identity = False  # the table maps every pixel value to itself

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._predict_input(self._quantize(_check_batch(batch, self.input_hw_c, self.path)))

    def predict_pixels(self, pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
        """`predict(spec.rescale(pixels))` for uint8 pixels: a float32 input rescaled as is (faster than a table's
        gather), an integer one through a table of the 256 input values (skipped when a uint8 input quantizes every
        pixel value to itself, as ST's `1/127.5, -1` rescaling does)."""
        if tuple(pixels.shape[1:]) != self.input_hw_c or pixels.dtype != np.uint8:
            raise EngineError(
                f"{self.path} expects uint8 pixels of shape {self.input_hw_c}, got {pixels.dtype} {pixels.shape}"
            )
        if np.dtype(self.input["dtype"]) == np.float32:
            return self._predict_input(spec.rescale(pixels))
        table = self._table
        if table is None or self._table_spec != spec:
            table = self._table = self._quantize(spec.rescale(np.arange(256, dtype=np.uint8)))
            self._table_spec = spec
            self._identity = table.dtype == np.uint8 and bool(np.array_equal(table, np.arange(256)))
        return self._predict_input(pixels if self._identity else table[pixels])  # identity: a uint8 input as is

    def _predict_input(self, batch: np.ndarray) -> np.ndarray:
        """Scores for a batch already in the model's input type."""
        if self.resizable:
            return as_class_scores(self._run(batch))
        return as_class_scores(np.concatenate([self._run(image[None]) for image in batch]))

    def _interpreter(self, delegate: bool) -> Any:
        """A LiteRT interpreter; `delegate=False`: LiteRT's built-in kernels only (no XNNPACK)."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return Interpreter(**self._source, num_threads=self.threads, experimental_op_resolver_type=resolver)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._invoke(batch)
        except RuntimeError as error:
            if "XNNPACK" not in str(error) or "built-in kernels" in self.runtime:
                raise
        # XNNPACK cannot prepare some graphs (e.g. ST EfficientNet LC int8 at batch > 1): LiteRT's own kernels can.
        log.warning("%s: XNNPACK cannot run this model; using LiteRT's built-in kernels", self.path.name)
        self.threads = 1
        self.interpreter = self._interpreter(delegate=False)
        self.batch_size = -1
        self.runtime += " (built-in kernels)"
        return self._invoke(batch)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch_size:
            self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *self.input_hw_c], strict=True)
            self.interpreter.allocate_tensors()
            self.batch_size = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output["index"]))

    def _quantize(self, batch: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        scale, zero_point = self.input["quantization"]
        if not np.issubdtype(dtype, np.integer):
            return batch.astype(dtype)
        values: np.ndarray = batch / np.float32(scale) if scale else batch.copy()
        values += zero_point
        # Round half away from zero, as TFLite's own QUANTIZE kernel does (in place: batches are large).
        negative = np.signbit(values)
        np.abs(values, out=values)
        values += 0.5
        np.floor(values, out=values)
        np.negative(values, out=values, where=negative)
        info = np.iinfo(dtype)
        return np.clip(values, info.min, info.max, out=values).astype(dtype)

    def _dequantize(self, output: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output["quantization"]
        if np.issubdtype(output.dtype, np.integer) and scale:
            scores: np.ndarray = (output.astype(np.float32) - zero_point) * scale
            return scores
        return output.astype(np.float32)
