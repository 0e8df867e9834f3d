"""Quantizers and what they share: calibration data in, an int8 model out.

`tflite` (the TFLite converter, fed ranges measured by `statistics`), `onnx` (ONNX Runtime's QDQ quantizer),
`common` (results and helpers both use), `cache` (the statistics cache both read and write).
"""
