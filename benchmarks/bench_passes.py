"""Cost of one model pass per image: the model as given vs advkit's faster copies (fastpath.py).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_passes.py [--model zoo:mnist5k-pgdat] [--threads 2]

Prints microseconds per image for forward+backward (input gradient only) and forward-only passes at
several batch sizes: eager (the module), channels-last copy, frozen TorchScript copy (forward only).
Median of 15 timed repetitions after 3 warm-up runs.  ``--device cuda`` times on the GPU (each
repetition ends with ``torch.cuda.synchronize()``) and adds bf16-autocast columns: the candidate GPU fast
path, whose agreement with the float32 model would have to be checked like the CPU copies'.
"""
from __future__ import annotations

import argparse
import time

import torch


REPS = 15


def _median_seconds(fn, reps: int | None = None, device: str = "cpu") -> float:
    reps = reps or REPS
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(min(3, reps)):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:mnist5k-pgdat")
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="32,100,400")
    ap.add_argument("--reps", type=int, default=15, help="Timed repetitions (median); warm-up min(3, reps).")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    gpu = args.device.startswith("cuda")
    global REPS
    REPS = args.reps
    torch.set_num_threads(args.threads)
    from advkit.attacks import fastpath
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model
    clf, data = load_model(args.model).to(args.device), load_data(args.data)
    head = ["fwd+bwd eager", "fwd+bwd channels-last", "fwd eager", "fwd channels-last", "fwd frozen"]
    head += ["fwd+bwd bf16", "fwd bf16"] if gpu else []
    print(f"{args.device}: " + (torch.cuda.get_device_name(args.device) if gpu else f"{args.threads} threads")
          + (f", TF32 convolutions {torch.backends.cudnn.allow_tf32}" if gpu else ""))
    print("| batch | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    with clf.inference():
        copies = fastpath._Copies(fastpath._state_key(clf))
        cl, frozen = copies.channels_last(clf), copies.frozen(clf)
        for b in (int(v) for v in args.batches.split(",")):
            x, y = data.x[:b].contiguous().to(args.device), data.y[:b].to(args.device)
            loss = lambda z: torch.nn.functional.cross_entropy(z, y, reduction="none")  # noqa: E731

            def fb(module, fmt):
                return lambda: fastpath._value_and_grad(module, fmt, x, loss)

            def fwd(module, fmt):
                def run():
                    with torch.no_grad():
                        module(fastpath._layout(x, fmt))
                return run
            def bf16(fn):
                def run():
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        fn()
                return run
            cells = [fb(clf, torch.contiguous_format), fb(*cl) if cl else None, fwd(clf, torch.contiguous_format),
                     fwd(*cl) if cl else None, fwd(*frozen) if frozen else None]
            if gpu:
                cells += [bf16(fb(clf, torch.contiguous_format)), bf16(fwd(clf, torch.contiguous_format))]
            us = [f"{_median_seconds(c, device=args.device) / b * 1e6:.1f} µs" if c else "n/a" for c in cells]
            print(f"| {b} | " + " | ".join(us) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
