"""stquant engine: headless post-training quantization of image classifiers for STM32."""

__version__ = "0.1.0"
