"""Scale benchmarks (issue 13): sharded-evaluation throughput, streaming memory, PreActResNet-18 passes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py throughput [--n 48] [--batch-size 8]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py memory [--images 20000]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py passes [--batches 32,128] [--reps 5]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py all

throughput
    The CIFAR-10-shaped workload: PreActResNet-18 (fixed random initialisation) on 3×32×32 with the
    CIFAR-10 mean/std, ``--n`` generated PNG images streamed from an image folder (each labelled with the
    model's prediction, so every sample is attacked), FGSM + PGD-10 × 1, AutoAttack, curve and checks
    off.  ``advkit evaluate`` once as 1 process × 1 thread and once as ``torchrun --nproc_per_node 2``
    × 1 thread each; prints both wall times (process start included) and the evaluation's own stage
    time (``result.json`` timings, rank 0), and the speed-up ratios.  Per-sample records are checked
    equal.
memory
    Peak resident memory (``ru_maxrss`` of a fresh process) over a generated image folder of
    ``--images`` 32×32 RGB PNGs: the interpreter with torch + advkit imported, reading every image in
    batches of 250 streamed, and loading the folder into one tensor (the pre-streaming behaviour).
passes
    Microseconds per image of PreActResNet-18 (with mean/std) passes: eager vs the checked fast copies
    (``benchmarks/bench_passes.py``).

The numbers depend on the machine and its load; compare ratios printed by one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FACTORY = '''
import torch
from advkit.model import Classifier
from advkit.zoo.architectures import build

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def net():
    torch.manual_seed(0)  # a fixed random initialisation stands in for a CIFAR-10 checkpoint
    return build("preact-resnet18", num_classes=10, in_channels=3, input_size=32).eval()


def normalised():
    return Classifier(net(), mean=MEAN, std=STD)
'''
MEAN, STD = "0.4914,0.4822,0.4465", "0.2471,0.2435,0.2616"
SPEC = """
n = {n}
batch_size = {bs}
threats = ["linf:8/255"]
[stages.pgd]
steps = 10
restarts = 1
[stages.autoattack]
version = "off"
[stages.curve]
enabled = false
[stages.checks]
enabled = false
"""


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(k, None)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _pngs(folder: Path, count: int, size: int = 32, classes: int = 10, seed: int = 0) -> None:
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"c{i % classes}" / f"{i:06d}.png")


def _cifar_folder(work: Path, n: int) -> tuple[Path, Path]:
    """(factory file, image folder whose labels are the normalised model's predictions)."""
    import torch
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model
    factory = work / "cifar_factory.py"
    factory.write_text(FACTORY)
    raw = work / "raw"
    _pngs(raw, n, classes=1)
    torch.set_num_threads(1)
    clf = load_model(f"{factory}:normalised")
    files = sorted((raw / "c0").iterdir())
    pred = clf.predict(load_data(f"imagefolder:{raw}").x).tolist()
    folder = work / "cifar"
    for c in range(10):
        (folder / f"c{c}").mkdir(parents=True)
    for f, p in zip(files, pred):
        f.rename(folder / f"c{p}" / f.name)
    return factory, folder


def throughput(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        factory, folder = _cifar_folder(work, args.n)
        spec = work / "spec.toml"
        spec.write_text(f'model = "{factory}:net"\ndata = "imagefolder:{folder}"\n' + SPEC.format(n=args.n, bs=args.batch_size))
        common = ["-m", "advkit", "evaluate", str(spec), "--mean", MEAN, "--std", STD, "--quiet", "--device", "cpu"]
        runs = {}
        for procs in (1, 2):
            out = work / f"run{procs}"
            launcher = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                            "--standalone", "--nproc_per_node", str(procs)]
            t = time.perf_counter()
            p = subprocess.run([*launcher, *common, "--db", str(work / f"h{procs}.db"), "--out", str(out)],
                               env=_env(), capture_output=True, text=True)
            wall = time.perf_counter() - t
            if p.returncode != 0:
                raise SystemExit(f"{procs} process(es) failed:\n{p.stderr[-2000:]}")
            result = json.loads((out / "result.json").read_text())
            with np.load(out / "samples.npz") as z:
                samples = {k: z[k] for k in z.files if not k.startswith("gallery")}
            runs[procs] = {"wall": wall, "stages": sum(result["timings"].values()), "samples": samples}
        same = all(np.array_equal(runs[1]["samples"][k], runs[2]["samples"][k]) for k in runs[1]["samples"])
        out = {"n": args.n, "batch_size": args.batch_size, "records_equal": same,
               **{f"{k}_{p}proc": runs[p][k] for p in (1, 2) for k in ("wall", "stages")}}
        out["speedup_wall"] = runs[1]["wall"] / runs[2]["wall"]
        out["speedup_stages"] = runs[1]["stages"] / runs[2]["stages"]
        print(f"| processes × threads | wall s (incl. start) | stage s (result.json timings) |")
        print("|---|---|---|")
        for p in (1, 2):
            print(f"| {p} × 1 | {runs[p]['wall']:.1f} | {runs[p]['stages']:.1f} |")
        print(f"speed-up 2×1 vs 1×1: wall {out['speedup_wall']:.2f}×, stages {out['speedup_stages']:.2f}× "
              f"(n={args.n}, batch {args.batch_size}); per-sample records equal: {same}")
        return out


PROBE = r'''
import resource, sys, torch
import advkit.sources.data as D
torch.set_num_threads(1)
mode, ref = sys.argv[1], sys.argv[2]
if mode == "stream":
    ds = D.load_data(ref, stream=True)
    total = 0.0
    for i in range(0, len(ds.x), 250):
        total += float(ds.x[i:i + 250].sum())
elif mode == "tensor":
    ds = D.load_data(ref)
    total = float(ds.x.sum())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def memory(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "folder"
        t = time.perf_counter()
        _pngs(folder, args.images)
        made = time.perf_counter() - t
        ref = f"imagefolder:{folder}"
        peak = {}
        for mode in ("baseline", "stream", "tensor"):
            p = subprocess.run([sys.executable, "-c", PROBE, mode, ref], env=_env(), capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(p.stderr[-2000:])
            peak[mode] = int(p.stdout.split()[-1]) / 1024  # KiB → MiB (Linux)
        floats = args.images * 3 * 32 * 32 * 4 / 2**20
        print(f"{args.images} generated 32×32 RGB PNGs ({made:.0f} s to write); float32 tensor of the set: {floats:.0f} MiB")
        print("| process | peak RSS MiB | above baseline MiB |")
        print("|---|---|---|")
        for mode, label in (("baseline", "torch + advkit imported"), ("stream", "streamed, batches of 250"),
                            ("tensor", "loaded into one tensor")):
            print(f"| {label} | {peak[mode]:.0f} | {peak[mode] - peak['baseline']:.0f} |")
        return {"images": args.images, "peak_mib": peak, "tensor_mib": floats}


def passes(args) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_passes
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cifar_factory.py").write_text(FACTORY)
        x = np.random.default_rng(0).random((max(int(b) for b in args.batches.split(",")), 3, 32, 32), np.float32)
        np.savez(work / "x.npz", x=x, y=np.arange(len(x)) % 10)
        print("PreActResNet-18 (CIFAR-10 mean/std), 3×32×32, µs per image:")
        bench_passes.main(["--model", f"{work / 'cifar_factory.py'}:normalised", "--data", f"npz:{work / 'x.npz'}",
                           "--threads", str(torch.get_num_threads()), "--batches", args.batches,
                           "--reps", str(args.reps), "--device", args.device])
    return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("throughput", "memory", "passes", "all"))
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--reps", type=int, default=5, help="passes: timed repetitions per cell (median)")
    ap.add_argument("--json", default=None, help="Also write the numbers to this JSON file.")
    ap.add_argument("--device", default="cpu", help="passes: cpu or cuda")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    res = {}
    for name, fn in (("throughput", throughput), ("memory", memory), ("passes", passes)):
        if args.what in (name, "all"):
            res[name] = fn(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
    print(f"machine load (1/5/15 min): {os.getloadavg()}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
