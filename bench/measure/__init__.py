"""Measurement inside the worker process: resident memory sampling, CPU contention and scoring throughput.
(Latency, census, size and device memory are part of the contract, in bench.core; the modules of those names
here are deprecated re-exports.)"""
