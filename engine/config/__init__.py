"""The config file: the one pydantic schema (`schema`), the model zoo's older dialect (`dialects`), what each
operation mode requires (`modes`), field help and defaults (`fields`), safe arithmetic in values (`expressions`),
YAML with line numbers (`yaml_source`), and keys read but not used (`unused_keys`).

Imports only `engine.common`; never TensorFlow or ONNX Runtime (the wizard imports this package).
"""
