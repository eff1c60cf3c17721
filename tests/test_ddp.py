"""python -m convforge.torch.ddp_train: 2 ranks over gloo on 127.0.0.1 take the same steps as one process
on the whole batch, and a rank killed mid-run makes the launcher exit non-zero instead of hanging."""
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no gloo backend")

DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
STEPS, BATCH = 4, 32


def _env():
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env["MASTER_ADDR"] = "127.0.0.1"
    return env


def _cli(out, nproc, *extra):
    return ["--model", "lenet5", "--dataset", "digits", "--nproc", str(nproc), "--batch-size", str(BATCH),
            "--threads", "1", "--log-every", "1", "--out", str(out), *extra]


def test_two_ranks_equal_one_process_on_the_whole_batch(tmp_path, monkeypatch):
    r = subprocess.run([sys.executable, "-m", "convforge.torch.ddp_train", *_cli(tmp_path / "two", 2, "--steps",
                        str(STEPS))], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank 1/2" in r.stdout and f"step {STEPS}:" in r.stdout

    # The reference: one process (in this one) on the concatenated batch of 2 x 16 images.
    from convforge.torch import ddp_train, models

    import convforge.functional as F

    for k in DIST_VARS + ("GLOO_SOCKET_IFNAME",):
        monkeypatch.delenv(k, raising=False)  # restored after the test, as the thread counts
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    threads = (torch.get_num_threads(), F.get_num_threads())
    try:
        assert ddp_train.main(_cli(tmp_path / "one", 1, "--steps", str(STEPS))) == 0
    finally:
        torch.set_num_threads(threads[0])
        F.set_num_threads(threads[1])

    two = torch.load(tmp_path / "two" / "model.pt")
    one = torch.load(tmp_path / "one" / "model.pt")
    torch.manual_seed(0)
    init = models.lenet5().state_dict()
    assert two.keys() == one.keys() == init.keys()
    for k in one:
        rel = float((two[k] - one[k]).norm() / one[k].norm())
        assert rel < 1e-5, f"{k}: 2 ranks and 1 process differ by {rel:.2e} (relative)"
        assert float((one[k] - init[k]).abs().max()) > 1e-4, f"{k} did not move in {STEPS} steps"
    assert (tmp_path / "two" / "last.npz").exists()  # a convforge checkpoint: `convforge evaluate` reads it


def test_a_killed_rank_stops_the_launcher_with_a_message(tmp_path):
    # The launcher and its ranks in a session of their own, so that cleanup can stop them all: a rank
    # left running would hold the output pipe open and the read below would never end.
    proc = subprocess.Popen([sys.executable, "-m", "convforge.torch.ddp_train", *_cli(tmp_path, 2, "--epochs", "1000",
                             "--timeout", "30")], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    stop_all = lambda: os.killpg(proc.pid, signal.SIGKILL)  # noqa: E731
    watchdog = threading.Timer(300, stop_all)  # reading the output below never waits longer than this
    watchdog.start()
    try:
        # The ranks share one pipe: search the text so far, not lines ("rank 1/2: pid 1234, ..." from each
        # rank, then rank 0's "step N: ...").
        text = ""
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail("the launcher ended (or hung and was stopped) before step 2; its output: "
                            + text[-2000:] + " stderr: " + proc.stderr.read().decode(errors="replace"))
            text += chunk.decode(errors="replace")
            pids = {int(r): int(p) for r, p in re.findall(r"rank (\d+)/2: pid (\d+)", text)}
            if 1 in pids and re.search(r"step 2: ", text):
                break
        watchdog.cancel()
        os.kill(pids[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # bounded: a hang fails here
        err = err.decode(errors="replace")
    finally:
        watchdog.cancel()
        try:
            stop_all()  # whatever is left of the session (the launcher has normally exited by now)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.communicate()
    assert proc.returncode != 0
    assert "rank 1 was killed by signal SIGKILL" in err, err
    assert "the other ranks were stopped" in err


def test_bad_arguments_name_the_flag(capsys):
    from convforge.torch import ddp_train

    with pytest.raises(SystemExit):
        ddp_train.parse_args(["--dataset", "mnist"])
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ddp_train.parse_args(["--nproc", "0"])
    assert "--nproc must be at least 1" in capsys.readouterr().err


def test_the_rendezvous_port_is_never_an_ephemeral_one():
    """A port from the ephemeral range can be rank 1's own source port while rank 0 is not yet
    listening: TCP connects the socket to itself and the rank waits forever (seen under load)."""
    from convforge.torch import ddp_train

    lo, _ = ddp_train._ephemeral_range()
    ports = {ddp_train._free_port("127.0.0.1") for _ in range(20)}
    assert all(1024 <= p < lo for p in ports), (sorted(ports), lo)

