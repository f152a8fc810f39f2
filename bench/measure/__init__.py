"""Measurement inside the worker process: resident memory sampling and CPU contention. (Latency, census, size
and device memory are part of the contract, in bench.core; `census` and `latency` here re-export them.)"""
