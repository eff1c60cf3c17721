"""Data-parallel training with torch.distributed: DistributedDataParallel over convforge's kernels.

    python -m convforge.torch.ddp_train --model lenet5 --dataset digits --nproc 2
    python -m convforge.torch.ddp_train --model lenet5 --dataset mnist --data DIR --nproc 2 --out runs/ddp
    torchrun --nproc-per-node 2 -m convforge.torch.ddp_train --model lenet5 --dataset mnist --data DIR
    torchrun --nnodes 2 --node-rank 0|1 --master-addr HOST --master-port 29500 --nproc-per-node 2 \\
        -m convforge.torch.ddp_train --model lenet5 --dataset mnist --data DIR        (two machines)

The model is a torch model (``convforge.torch.models``) converted to convforge's operators
(``convforge.torch.convert``), wrapped in ``DistributedDataParallel``: gloo on the CPU, nccl with
``--device cuda``. Every step takes the next ``--batch-size`` images of one seeded shuffle and rank r
of W trains on its r-th slice of batch-size / W images; DDP averages the gradients, so W ranks take
the same steps as one process on the whole batch.

Launched by torchrun, the rank, world size, master address and port come from the standard
environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and ``--nproc`` is
ignored. Without them this module is the launcher: it starts ``--nproc`` ranks on this machine
(master 127.0.0.1 unless MASTER_ADDR says otherwise, a free port below the ephemeral range unless MASTER_PORT is set). If a
rank dies, the launcher stops the others and exits with status 1, naming the rank and the cause;
``--timeout`` bounds how long a rank waits in a collective for a peer that stopped answering.

Rank 0 prints the progress and writes to ``--out``: ``model.pt`` (the torch state dict),
``last.npz`` (a convforge checkpoint for ``convforge evaluate``; LeNet-5 only) and ``metrics.json``.
"""
import argparse
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as TF

ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m convforge.torch.ddp_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5", choices=["lenet5"])
    p.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    p.add_argument("--data", default=None, help="folder of the MNIST IDX files (--dataset mnist)")
    p.add_argument("--nproc", type=int, default=1, help="ranks to start on this machine (not under torchrun)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps in all (0: run every epoch)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step over all ranks (divisible by them)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="threads per rank (0: the CPUs divided by the ranks)")
    p.add_argument("--algo", default="auto", help="conv2d algo of the converted model")
    p.add_argument("--no-convert", action="store_true", help="train the plain torch model (for comparison)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a rank waits in a collective")
    p.add_argument("--log-every", type=int, default=10, help="print the loss every N steps (rank 0)")
    p.add_argument("--out", default=None, help="folder for model.pt, last.npz and metrics.json (rank 0)")
    args = p.parse_args(argv)
    for flag in ("nproc", "epochs", "batch_size", "log_every"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.steps < 0 or args.threads < 0 or args.timeout <= 0:
        p.error("--steps and --threads must be non-negative and --timeout positive")
    if args.dataset == "mnist" and args.data is None:
        p.error("--dataset mnist needs --data DIR (the folder of the IDX files)")
    return args


# ---------------------------------------------------------------------------------------------
# One rank
# ---------------------------------------------------------------------------------------------

def _say(line):
    """One line to stdout in one write: the ranks share the launcher's stdout, and a line written as
    text then newline can be split by another writer (seen in CI: "...slice)step 2: ..." on one line)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _log(rank, *msg):
    if rank == 0:
        _say(" ".join(str(m) for m in msg))


def _evaluate(model, x, y, rank, world, device, batch=500):
    """Accuracy on the test split: each rank counts its share, one all_reduce adds them up."""
    model.eval()
    counts = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        mine = np.arange(rank, len(y), world)
        for start in range(0, len(mine), batch):
            idx = mine[start:start + batch]
            pred = model(torch.from_numpy(x[idx]).to(device)).argmax(1).cpu().numpy()
            counts += torch.tensor([(pred == y[idx]).sum(), len(idx)], dtype=torch.float64)
    model.train()
    dist.all_reduce(counts)
    return float(counts[0] / counts[1])


def _save(out, model, args, dataset, history):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, out / "model.pt")
    if args.model == "lenet5":
        from convforge import models, nn

        cf_model = models.lenet5()
        nn.load_torch_state_dict(cf_model, state)
        nn.save_checkpoint(out / "last.npz", cf_model, epoch=len(history), data=dataset.info(),
                           data_path=args.data, train={"ddp_world_size": dist.get_world_size(), **vars(args)})
    (out / "metrics.json").write_text(json.dumps({"args": vars(args), "world_size": dist.get_world_size(),
                                                  "history": history}, indent=2))


def run_rank(args, rank, world, local_rank):
    """Train on this rank; the process group comes from the environment (env://)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    import convforge.functional as F
    from convforge import data

    from . import models
    from .convert import convert

    threads = args.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    F.set_num_threads(threads)
    cuda = args.device == "cuda"
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=args.timeout))
    _say(f"rank {rank}/{world}: pid {os.getpid()}, {threads} thread(s), {device}")
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the number of ranks {world}")
    per_rank = args.batch_size // world
    dataset = data.load_dataset(args.dataset, args.data)

    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = models.build(args.model)
    if not args.no_convert:
        convert(model, algo=args.algo)
    model.to(device)
    ddp = DDP(model, device_ids=[local_rank] if cuda else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum)
    batches = data.BatchIterator(dataset.x_train, dataset.y_train, args.batch_size, shuffle=True, seed=args.seed,
                                 drop_last=True)
    _log(rank, f"{args.model} on {dataset.name} ({len(dataset.y_train)} training images), {world} rank(s) x "
               f"{per_rank} images per step, {'torch kernels' if args.no_convert else 'convforge kernels'}")
    history, step, t0 = [], 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss_sum, n_steps = torch.zeros(1, dtype=torch.float64), 0
        for xb, yb in batches:
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            xs = torch.from_numpy(xb[mine]).to(device)
            ys = torch.from_numpy(yb[mine]).to(device)
            loss = TF.cross_entropy(ddp(xs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            n_steps += 1
            loss_sum += loss.item()
            if step % args.log_every == 0:
                _log(rank, f"step {step}: loss {loss.item():.4f} (rank 0's slice)")
            if args.steps and step >= args.steps:
                break
        dist.all_reduce(loss_sum)
        acc = _evaluate(ddp, dataset.x_test, dataset.y_test, rank, world, device)
        history.append({"epoch": epoch, "steps": step, "train_loss": float(loss_sum) / max(1, n_steps) / world,
                        "test_accuracy": acc, "seconds": round(time.perf_counter() - t0, 3)})
        _log(rank, f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, test accuracy {100 * acc:.2f}% "
                   f"({history[-1]['seconds']:.1f} s)")
        if args.steps and step >= args.steps:
            break
    if rank == 0 and args.out:
        _save(args.out, model, args, dataset, history)
        _log(rank, f"wrote {args.out}/model.pt" + (f", {args.out}/last.npz" if args.model == "lenet5" else ""))
    dist.destroy_process_group()
    return history


# ---------------------------------------------------------------------------------------------
# The launcher: one process per rank on this machine
# ---------------------------------------------------------------------------------------------

def _ephemeral_range():
    """The kernel's range of ports for outgoing connections (Linux), or IANA's default elsewhere."""
    try:
        lo, hi = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 49152, 65535


def _free_port(host):
    """A free port for the rendezvous, below the ephemeral range. A port the kernel handed out (bind to
    port 0) can come back as the source port of rank 1's own connection attempt while rank 0 has not
    bound it yet: TCP then connects the socket to itself and rank 1 waits forever for an answer (a hang
    seen under load, never an error). Ports outside the ephemeral range are never source ports."""
    import random

    lo, _ = _ephemeral_range()
    first = 20000 if lo > 21000 else 1024
    rnd = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(200):
        port = rnd.randrange(first, lo)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"convforge.torch.ddp_train: no free port in {first}..{lo - 1} on {host}; set MASTER_PORT")


def _loopback_interface():
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), None)


def _spawned_rank(index, args, world):
    os.environ["RANK"] = os.environ["LOCAL_RANK"] = str(index)
    run_rank(args, index, world, index)


def _describe_failure(ctx, err):
    """One line per rank that did not finish cleanly: killed by a signal, exited, or raised."""
    import signal as _signal

    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    lines = []
    if isinstance(err, ProcessRaisedException):
        last = [ln for ln in str(err.msg).strip().splitlines() if ln.strip()][-1:]
        lines.append(f"rank {err.error_index} raised {last[0] if last else 'an exception'}")
    elif isinstance(err, ProcessExitedException):
        how = f"was killed by signal {err.signal_name}" if err.signal_name else f"exited with status {err.exit_code}"
        lines.append(f"rank {err.error_index} {how}")
    for i, proc in enumerate(ctx.processes):
        code = proc.exitcode
        if i == getattr(err, "error_index", None) or code in (0, None, -_signal.SIGTERM):
            continue  # the failed rank above; ranks that finished or that the launcher stopped
        how = (f"was killed by signal {_signal.Signals(-code).name}" if code < 0 else f"exited with status {code}")
        lines.append(f"rank {i} {how}")
    return lines


def launch(args):
    """Start args.nproc ranks on this machine and wait; 0 when all finished, 1 when one failed."""
    import torch.multiprocessing as mp

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port(os.environ["MASTER_ADDR"])))
    os.environ["WORLD_SIZE"] = str(args.nproc)
    loopback = _loopback_interface()
    if loopback and os.environ["MASTER_ADDR"] in ("127.0.0.1", "localhost"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)  # the ranks talk over the loopback only
    if args.nproc == 1:
        os.environ["RANK"] = os.environ["LOCAL_RANK"] = "0"
        run_rank(args, 0, 1, 0)
        return 0
    ctx = mp.start_processes(_spawned_rank, args=(args, args.nproc), nprocs=args.nproc, join=False,
                             start_method="spawn")
    try:
        while not ctx.join():
            pass
    except Exception as err:  # ProcessRaisedException / ProcessExitedException: join stopped the others
        lines = _describe_failure(ctx, err)
        print(f"convforge.torch.ddp_train: {'; '.join(lines)}; the other ranks were stopped",
              file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv=None):
    args = parse_args(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun (or another launcher)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        run_rank(args, rank, world, int(os.environ.get("LOCAL_RANK", rank)))
        return 0
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
