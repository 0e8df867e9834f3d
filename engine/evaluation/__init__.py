"""How good a model is: one predictor interface over Keras, TFLite and ONNX models (`predictors`),
accuracy, agreement and confusion matrices (`accuracy`), and the per-layer SQNR of a quantized model
against its float model (`layer_errors` computes it, `layer_report` picks the images and formats it).

Imports `engine.models`, `engine.data` and `engine.common`.
"""
