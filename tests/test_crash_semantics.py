"""Crash semantics in process (issue 15, items 2 and 4): which checkpoints a resume may load,
digests recorded before the rename, dead runs marked KILLED, one folder per process, stale
partial files, a store that appears whole, a seeded BN recompute, the kill hook."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from binwrn.errors import ConfigError
from binwrn.tracking.run import (
    DIGEST_TAG,
    FAILURE_TAG,
    HOST_TAG,
    PID_TAG,
    PREVIOUS_DIGEST_TAG,
    TrackedRun,
    find_resumable_run,
    mark_dead_runs_killed,
    mark_unresumable,
)
from binwrn.train.bn_stats import recompute_bn_statistics
from binwrn.train.checkpoints import (
    CHECKPOINT_KEYS,
    LAST,
    OutputLock,
    UnusableCheckpoint,
    atomic_save,
    remove_stale_partials,
    verify_checkpoint,
)
from binwrn.train.resume import resumable_from


class _RunsCode:
    """Unpickling this creates `marker`: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path: Path, marker: Path) -> str:
    """A last.ckpt with every key a real one has, whose unpickling runs a shell command;
    its SHA-256 (an attacker who can write tags records it too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: 0 for k in CHECKPOINT_KEYS}
    state["callbacks"] = _RunsCode(marker)
    torch.save(state, path, pickle_module=pickle)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_checkpoint(path: Path) -> str:
    state = {"state_dict": {"w": torch.ones(3)}, "loops": {}, "callbacks": {"x": {"n": 1}},
             "optimizer_states": [], "epoch": 1}
    torch.save(state, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_checkpoint_loads_only_with_its_recorded_digest(tmp_path: Path) -> None:
    last = tmp_path / LAST
    digest = _real_checkpoint(last)
    assert verify_checkpoint(last, {digest}) == digest
    assert verify_checkpoint(last, {"0" * 64, digest}) == digest  # the replaced one's, too
    with pytest.raises(UnusableCheckpoint, match="not the one the run recorded"):
        verify_checkpoint(last, {"0" * 64})
    with pytest.raises(UnusableCheckpoint, match="records no digest"):
        verify_checkpoint(last, set())


def test_crafted_pickle_runs_nothing_even_with_the_force_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code-ran"
    last = tmp_path / LAST
    digest = crafted_checkpoint(last, marker)
    with pytest.raises(UnusableCheckpoint, match="weights_only=True") as caught:
        verify_checkpoint(last, {digest})  # the digest matches: it is unpickled, safely
    assert "weights_only=False" not in str(caught.value)  # never torch's advice to trust it
    with pytest.raises(UnusableCheckpoint, match="not the one"):
        verify_checkpoint(last, {"0" * 64})  # it does not: never unpickled at all
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "foreign", "empty", "missing"])
def test_unreadable_checkpoints_are_unusable_with_a_reason(tmp_path: Path, damage: str) -> None:
    last = tmp_path / LAST
    _real_checkpoint(last)
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:300])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, last)  # loads, but is no training checkpoint
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        last.unlink()
    digest = hashlib.sha256(last.read_bytes()).hexdigest() if last.exists() else "x"
    with pytest.raises(UnusableCheckpoint) as caught:
        verify_checkpoint(last, {digest})
    assert str(caught.value) and "\n" not in str(caught.value)


def test_a_terabyte_checkpoint_is_refused_by_its_size_before_it_is_read(
        tmp_path: Path) -> None:
    """`truncate -s 1T last.ckpt` (a sparse file): refused in well under a second, never
    read into memory (it was a MemoryError that wedged every rerun)."""
    from binwrn.models.wrn import WideResNet
    from binwrn.train.checkpoints import checkpoint_size_bound

    last = tmp_path / LAST
    _real_checkpoint(last)
    bound = checkpoint_size_bound(WideResNet(depth=10, width=1, num_classes=10))
    assert last.stat().st_size < bound  # a real checkpoint passes the bound
    os.truncate(last, 2**40)
    started = time.perf_counter()
    with pytest.raises(UnusableCheckpoint, match="1,099,511,627,776 bytes, more than"):
        verify_checkpoint(last, {"0" * 64}, max_bytes=bound)
    assert time.perf_counter() - started < 1.0


def test_output_root_is_the_starting_folder(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work" / "outputs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work" / "link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "work")
    assert resumable_from(tmp_path / "work" / "outputs" / "runs" / "x")
    assert resumable_from("outputs/runs/x")
    assert not resumable_from(tmp_path / "elsewhere")
    assert not resumable_from(tmp_path / "work" / "link" / "x")  # a link out of it
    assert not resumable_from(tmp_path / "work" / ".." / "elsewhere")
    # the folder the command itself writes to (an absolute hydra.run.dir on scratch)
    scratch = tmp_path / "scratch" / "run"
    assert resumable_from(scratch, writes_to=scratch)
    assert resumable_from(scratch / "sub", writes_to=scratch.parent)
    assert not resumable_from(tmp_path / "elsewhere", writes_to=scratch)


class _Trainer:
    is_global_zero = True

    def __init__(self, events: list) -> None:
        self.events = events

    def save_checkpoint(self, path: Path, weights_only: bool | None = None) -> None:
        assert weights_only is False  # said explicitly: no Lightning warning per epoch
        torch.save({"epoch": len(self.events)}, path)
        self.events.append(("written", path.name))


def test_digest_is_recorded_before_the_rename(tmp_path: Path) -> None:
    events: list = []
    last = tmp_path / LAST

    def record(digest: str) -> None:
        events.append(("recorded", digest, last.exists()))

    digest = atomic_save(_Trainer(events), last, record)
    assert events[1] == ("recorded", digest, False)  # tag first, then the file appears
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    assert not list(tmp_path.glob(".*.partial"))


def test_second_process_on_a_folder_gets_one_sentence(tmp_path: Path) -> None:
    with OutputLock(tmp_path):
        with pytest.raises(ConfigError, match=f"in use by another binwrn process "
                                              f"\\(pid {os.getpid()}\\)"):
            OutputLock(tmp_path).__enter__()
        assert OutputLock(tmp_path).held_elsewhere()
    assert not OutputLock(tmp_path).held_elsewhere()
    with OutputLock(tmp_path):  # free again
        pass


def test_stale_partials_are_removed(tmp_path: Path) -> None:
    for name in (".last.ckpt.123.partial", ".cycle-end-epoch0002.ckpt.partial", LAST):
        (tmp_path / name).write_bytes(b"x")
    assert {p.name for p in remove_stale_partials(tmp_path)} == {
        ".last.ckpt.123.partial", ".cycle-end-epoch0002.ckpt.partial"}
    assert [p.name for p in tmp_path.iterdir()] == [LAST]
    assert remove_stale_partials(tmp_path / "missing") == []


def test_runs_whose_process_is_gone_are_marked_killed(tmp_path: Path, fresh_store: Path) -> None:
    uri = f"sqlite:///{fresh_store}"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    held = tmp_path / "held"
    tags = {"binwrn.config_hash": "abc"}
    runs = {}
    for name, pid, where, folder in [("ghost", gone.pid, host, tmp_path / "g"),
                                     ("alive", os.getpid(), host, held),
                                     ("reused", os.getpid(), host, tmp_path / "free"),
                                     ("other-host", gone.pid, "elsewhere", tmp_path / "o"),
                                     ("resumed", gone.pid, host, tmp_path / "r")]:
        folder.mkdir()
        (folder / ".binwrn.lock").write_text("")
        run = TrackedRun(uri, "exp", str(tmp_path / "art"), name,
                         {**tags, "binwrn.output_dir": str(folder)}, {})
        run.__enter__()  # RUNNING, as a SIGKILL leaves it
        run.client.set_tag(run.run_id, PID_TAG, str(pid))
        run.client.set_tag(run.run_id, HOST_TAG, where)
        runs[name] = run.run_id
    with OutputLock(held):
        marked = mark_dead_runs_killed(MlflowClient(uri), "exp", "abc",
                                       lambda f: Path(f) == held, keep=runs["resumed"])
    assert set(marked) == {runs["ghost"], runs["reused"]}
    client = MlflowClient(uri)
    status = {n: client.get_run(i).info.status for n, i in runs.items()}
    assert status == {"ghost": "KILLED", "alive": "RUNNING", "reused": "KILLED",
                      "other-host": "RUNNING", "resumed": "RUNNING"}
    assert f"pid {gone.pid}" in client.get_run(runs["ghost"]).data.tags[FAILURE_TAG]


def test_an_unresumable_run_is_failed_and_passed_over(tmp_path: Path, fresh_store: Path) -> None:
    uri = f"sqlite:///{fresh_store}"
    tags = {"binwrn.config_hash": "abc"}
    older = TrackedRun(uri, "exp", str(tmp_path), "a", {**tags, "binwrn.output_dir": "/a"}, {})
    older.__enter__()
    newer = TrackedRun(uri, "exp", str(tmp_path), "b", {**tags, "binwrn.output_dir": "/b"}, {})
    newer.__enter__()
    newer.record_checkpoint_digests("new", "old")
    assert find_resumable_run(MlflowClient(uri), "exp", "abc") == (newer.run_id, "/b",
                                                                  {"new", "old"})
    mark_unresumable(MlflowClient(uri), newer.run_id, "its checkpoint is truncated")
    stored = MlflowClient(uri).get_run(newer.run_id)
    assert stored.info.status == "FAILED"
    assert stored.data.tags[FAILURE_TAG] == "its checkpoint is truncated"
    assert stored.data.tags[DIGEST_TAG] == "new" and stored.data.tags[PREVIOUS_DIGEST_TAG] == "old"
    assert find_resumable_run(MlflowClient(uri), "exp", "abc").run_id == older.run_id


def test_a_store_killed_while_it_is_created_is_created_again(tmp_path: Path) -> None:
    """SIGKILL during the migration of a new SQLite store used to leave one MLflow could never
    open ("duplicate column name"); now it is migrated under another name and renamed."""
    code = ("import sys; from binwrn.tracking.store import open_client; "
            "open_client(sys.argv[1]).search_experiments()")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = subprocess.run([sys.executable, "-c", code, uri], capture_output=True,
                            env={**os.environ, "BINWRN_TEST_KILL_AT": "store"})
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "mlflow.db").exists()
    assert [p.name for p in tmp_path.glob(".mlflow.db.*.creating")]  # what it left
    again = subprocess.run([sys.executable, "-c", code, uri], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not list(tmp_path.glob(".mlflow.db.*.creating"))
    MlflowClient(uri).create_experiment("works")


def test_seeded_bn_recompute_ignores_and_keeps_the_global_random_state() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    data = torch.randn(64, 3, 8, 8)

    def batches():  # draws its order and noise from torch's global generator, as training does
        for idx in torch.randperm(64).split(16):
            yield data[idx] + torch.rand(1)

    stats = []
    for state in (1, 2):
        torch.manual_seed(state)  # e.g. an uninterrupted run's stream vs a resumed one's
        before = torch.get_rng_state()
        recompute_bn_statistics(model, batches(), seed=7)
        assert torch.equal(torch.get_rng_state(), before)  # training's stream untouched
        stats.append((model[1].running_mean.clone(), model[1].running_var.clone()))
    assert torch.equal(stats[0][0], stats[1][0]) and torch.equal(stats[0][1], stats[1][1])
    torch.manual_seed(1)
    recompute_bn_statistics(model, batches(), seed=8)
    assert not torch.equal(model[1].running_mean, stats[0][0])


def test_kill_hook_counts_its_moment() -> None:
    code = ("from binwrn.kill_points import kill_point\n"
            "for i in range(3):\n    kill_point('mid_epoch'); kill_point('other')\n"
            "    print(i, flush=True)\n")
    for wanted, printed, rc in [("mid_epoch:2", "0\n", -signal.SIGKILL),
                                ("mid_epoch", "", -signal.SIGKILL),
                                ("final_test", "0\n1\n2\n", 0)]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "BINWRN_TEST_KILL_AT": wanted})
        assert (done.stdout, done.returncode) == (printed, rc)
