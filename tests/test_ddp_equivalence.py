"""The paper-equivalence claim of `data.batch_rule=global` with synchronised BN, with real
gloo processes: two DDP ranks that split a step of 9 images 5 + 4 compute the gradient and
the BN running statistics that one process computes on all 9 (a WRN-8-1 with the paper's
affine-free BN and the learned input BN)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from binwrn.models import WideResNet
from binwrn.train.data_parallel import shard_loss_weight
from binwrn.train.sync_bn import cpu_synced

STEP = 9


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (STEP, 3, 8, 8), generator=generator).double()
    return images, torch.arange(STEP) % 10


def _model() -> torch.nn.Module:
    torch.manual_seed(0)  # float64: equal up to summation order means equal to ~1e-12
    return WideResNet(depth=8, width=1, bits=1).double()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {f"grad:{n}": p.grad.clone() for n, p in model.named_parameters()}
    stats = {f"buffer:{n}": b.clone() for n, b in model.named_buffers() if "running" in n}
    return {**grads, **stats}


def _rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        images, labels = _batch()
        part = torch.tensor_split(torch.arange(STEP), world)[rank]
        model = cpu_synced(_model())
        ddp = DistributedDataParallel(model)
        loss = F.cross_entropy(ddp(images[part]), labels[part])
        (loss * shard_loss_weight(len(part), world, STEP)).backward()
        if rank == 0:
            torch.save(_state(model), Path(out) / "ddp.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_with_synced_bn_match_one_process_on_the_whole_step(tmp_path: Path) -> None:
    port = _free_port()
    # Rank 1 in a fresh process, rank 0 here: one interpreter start instead of two.
    other = mp.get_context("spawn").Process(target=_rank, args=(1, 2, port, str(tmp_path)))
    other.start()
    try:
        _rank(0, 2, port, str(tmp_path))
    finally:
        other.join(timeout=120)
    assert other.exitcode == 0
    together = torch.load(tmp_path / "ddp.pt")
    images, labels = _batch()
    model = _model()
    F.cross_entropy(model(images), labels).backward()
    alone = _state(model)
    assert together.keys() == alone.keys() and len(alone) > 20
    for name, value in alone.items():
        scale = value.abs().max().item() + 1e-12
        assert (together[name] - value).abs().max().item() <= 1e-9 * scale, name
