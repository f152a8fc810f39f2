"""Check bench's as-deployed memory against bare processes.

For each served run of a results folder measured with BENCH_KEEP_WORK=1, start a plain Python process that
imports the runtime (ONNX Runtime, OpenVINO, or PyTorch with transformers), loads the saved model from the
run's work folder (a PyTorch row through bench's loader, which also rebuilds torch.ao int8 layers) and makes
30 calls at the run's shape and threads, then compare its peak resident memory (VmHWM) with the record's
serving figures.

    BENCH_KEEP_WORK=1 bench run suites/qa.yaml --limit 100 --quick --results-dir /tmp/r
    python examples/deployed_memory.py /tmp/r/<machine>/qa
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.core.records import load_records

BARE = """
import sys, numpy as np
runtime, path, threads, batch, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if runtime == "onnxruntime":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    call = lambda feed: session.run(None, feed)
elif runtime == "pytorch":  # path: the run's work folder; bench's loader rebuilds what from_pretrained cannot
    from pathlib import Path
    from bench.serve.handoff import pick_up
    from bench.serve.loaders import load
    handoff = pick_up(Path(path))
    model = load(handoff.recipe, handoff.saved)
    names = list(handoff.pool[0])
    call = model.call
else:
    import openvino as ov
    precision, hint = sys.argv[6], sys.argv[7]
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
    compiled = ov.Core().compile_model(path, "CPU", config)
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    call = lambda feed: request.infer(feed)
feed = {n: np.ones((batch, length), dtype=np.int64) for n in names}
for _ in range(30):
    call(feed)
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""
MB = 2**20


def main(folder: Path) -> int:
    """Print one line per served run: bench's figures and the bare process's peak."""
    print(f"{'row':32} {'runtime':12} {'bench timing peak':>18} {'serving VmHWM':>14} {'bare VmHWM':>11} {'diff':>7}")
    for record in load_records([folder]).records:
        serving = record.serving
        if serving is None or serving.where != "fresh process" or not serving.timing_peak:
            continue
        saved = folder / ".work" / record.spec.key / "saved"
        files = sorted(saved.glob("*.onnx")) + sorted(saved.glob("model.xml"))
        model = saved.parent if serving.runtime == "pytorch" else next(iter(files), None)
        if model is None:
            print(f"{record.spec.compressor.display_name:32} no saved model under {saved} (BENCH_KEEP_WORK=1?)")
            continue
        precision = "bf16" if record.precision is not None and record.precision.main == "bf16" else "f32"
        args = [serving.runtime or "", str(model), str(record.spec.threads), str(record.spec.batch_size)]
        args += [str(record.spec.sequence_length), precision, "LATENCY"]
        done = subprocess.run([sys.executable, "-c", BARE, *args], check=True, capture_output=True, text=True)
        bare = int(done.stdout)
        diff = 100.0 * (serving.timing_peak - bare) / bare
        print(
            f"{record.spec.compressor.display_name:32} {serving.runtime or '':12} {serving.timing_peak / MB:16.0f} MB "
            f"{(serving.max_rss or 0) / MB:12.0f} MB {bare / MB:9.0f} MB {diff:+6.1f}%"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1])))
