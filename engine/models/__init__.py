"""Model files: format, existence and trust (`files`), describing a model without TensorFlow (`info`),
loading Keras safely (`load`, with Lambda layers recognised by `keras_lambda`), a float TFLite of a Keras
model (`trace`), and every private library API the engine relies on, guarded (`library_internals`).

Imports only `engine.common`.
"""
