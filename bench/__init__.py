"""bench: measure what each way of compressing a transformer costs and buys."""

__version__ = "0.1.0"
