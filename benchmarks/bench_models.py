"""Model benchmark: a LeNet-5 training step and a VGG-16 forward pass, convforge beside PyTorch eager (CPU).

    python benchmarks/bench_models.py [--threads N] [--only lenet,vgg,memory] [--repeat R] [--json FILE]

Cases:
  lenet_step  B=64, B=256: forward, cross-entropy, backward, SGD(momentum) update, on random 1x32x32 inputs
  vgg16_fwd   B=1, 3x224x224, eval mode (weights: 528 MiB per library)
  memory      peak resident memory (getrusage maxrss) of a process training LeNet-5 at B=256 for 20 steps

Each library runs in its own subprocess (``--worker NAME``), so that convforge's OpenMP pool and
torch's never spin against each other, and so that maxrss measures one library alone. Times are the
median over the repeats after warm-up; ratio = torch / convforge (above 1: convforge is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# Workers: build the model in one library, time it, print one JSON line.
# ----------------------------------------------------------------------------------------------
def _convforge_lenet(batch):
    import numpy as np

    from convforge import models, nn

    nn.manual_seed(0)
    model = models.lenet5().set_input_grad(False)  # as torch: no gradient for the input images
    crit = nn.CrossEntropyLoss()
    opt = nn.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        crit(model.forward(x), y)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()

    return step


def _torch_lenet(batch):
    import torch
    import torch.nn as tnn

    torch.manual_seed(0)
    model = tnn.Sequential(tnn.Conv2d(1, 6, 5), tnn.Tanh(), tnn.MaxPool2d(2, 2), tnn.Conv2d(6, 16, 5), tnn.Tanh(),
                           tnn.MaxPool2d(2, 2), tnn.Flatten(), tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84),
                           tnn.Tanh(), tnn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = tnn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _convforge_vgg():
    import numpy as np

    from convforge import models, nn

    nn.manual_seed(0)
    model = models.vgg16().eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    return lambda: model.forward(x)


def _torch_vgg():
    from collections import OrderedDict

    import torch
    import torch.nn as tnn

    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    layers, c = [], 3
    for v in cfg:
        layers += [tnn.MaxPool2d(2, 2)] if v == "M" else [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU()]
        c = v if v != "M" else c
    model = tnn.Sequential(OrderedDict(
        features=tnn.Sequential(*layers), flatten=tnn.Flatten(),
        classifier=tnn.Sequential(tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096),
                                  tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 1000)))).eval()
    x = torch.randn(1, 3, 224, 224)

    def fwd():
        with torch.no_grad():
            model(x)

    return fwd


def worker(lib, case, batch, threads, warmup, repeat):
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        from convforge import functional as F

        F.set_num_threads(threads)
    if case == "vgg16_fwd":
        fn = _convforge_vgg() if lib == "convforge" else _torch_vgg()
    else:
        fn = _convforge_lenet(batch) if lib == "convforge" else _torch_lenet(batch)
    timed = time_calls(fn, warmup, repeat)
    import resource

    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**timed, "maxrss_mb": maxrss_mb}))


def time_calls(fn, warmup, repeat):
    """{median_s, min_s} of repeat calls of fn after warmup calls (also used by bench_torch_ops.py)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times)}


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------
def run_worker(lib, case, batch, threads, warmup, repeat):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "python"), env.get("PYTHONPATH", "")] if p)
    cmd = [sys.executable, __file__, "--worker", lib, "--case", case, "--batch", str(batch), "--threads", str(threads),
           "--warmup", str(warmup), "--repeat", str(repeat)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _torch_version():
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--only", default="lenet,vgg,memory")
    p.add_argument("--repeat", type=int, default=30, help="timed LeNet-5 steps (VGG-16: a fifth, at least 3)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker, a.case, a.batch, a.threads, a.warmup, a.repeat)
        return 0

    only = set(a.only.split(","))
    rows = []
    if "lenet" in only:
        for b in (64, 256):
            rows.append(("lenet_step", b, 5, a.repeat))
    if "vgg" in only:
        rows.append(("vgg16_fwd", 1, 1, max(3, a.repeat // 5)))
    results = []
    print(f"convforge vs PyTorch {_torch_version()} eager, CPU, {a.threads} threads")
    print(f"{'case':<22}{'convforge ms':>14}{'torch ms':>12}{'ratio':>8}{'conv img/s':>12}{'torch img/s':>12}")
    for case, batch, warmup, repeat in rows:
        ours = run_worker("convforge", case, batch, a.threads, warmup, repeat)
        ref = run_worker("torch", case, batch, a.threads, warmup, repeat)
        res = {"case": case, "batch": batch, "threads": a.threads, "convforge": ours, "torch": ref}
        results.append(res)
        if "error" in ours or "error" in ref:
            print(f"{case} B={batch}: error: {ours.get('error', '')} {ref.get('error', '')}")
            continue
        res["ratio"] = ref["median_s"] / ours["median_s"]
        print(f"{f'{case} B={batch}':<22}{1e3 * ours['median_s']:>14.2f}{1e3 * ref['median_s']:>12.2f}"
              f"{res['ratio']:>8.2f}{batch / ours['median_s']:>12.1f}{batch / ref['median_s']:>12.1f}")
    if "memory" in only:
        ours = run_worker("convforge", "lenet_step", 256, a.threads, 2, 20)
        ref = run_worker("torch", "lenet_step", 256, a.threads, 2, 20)
        results.append({"case": "lenet_train_peak_memory", "batch": 256, "convforge": ours, "torch": ref})
        print(f"peak memory, LeNet-5 training at B=256 (maxrss of the process): convforge "
              f"{ours.get('maxrss_mb', float('nan')):.0f} MB, torch {ref.get('maxrss_mb', float('nan')):.0f} MB "
              f"(bar: < 500 MB)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
