"""Measurement: latency, memory and size, each a small module with a pure core."""
