"""Model runtimes other than eager PyTorch (whose handle, TorchModel, lives in bench.core.plugin)."""
