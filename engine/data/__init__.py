"""Images in: class-folder datasets and splits (`dataset`), decoding in worker processes (`images`), the
model zoo's resize/crop/rescale rules (`preprocess`), and the calibration stream every quantizer reads
(`calibration`).

Imports only `engine.common`; never TensorFlow.
"""
