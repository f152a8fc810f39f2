"""Model runtimes: eager PyTorch (`TorchModel`), ONNX Runtime, OpenVINO; each a ModelHandle of bench.core.model."""
