"""Data-parallel rules in process: how steps and the test set are split between DDP ranks,
which settings are refused, and which configs keep their one-device hash."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler

from binwrn.configuration.build import build_schedule_from
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash
from binwrn.configuration.parallel import check_data_parallel
from binwrn.data.shards import EpochSteps, evaluation_shard
from binwrn.errors import ConfigError
from binwrn.train.data_parallel import shard_loss_weight


@pytest.mark.parametrize("n, step, world", [(1000, 125, 2), (53, 10, 3), (50, 7, 4)])
def test_ranks_take_disjoint_parts_of_the_same_steps_covering_each_epoch(n, step, world):
    for epoch in (0, 1):
        ranks = [EpochSteps(n, step, rank, world, seed=7) for rank in range(world)]
        for sampler in ranks:
            sampler.set_epoch(epoch)
        steps = list(zip(*(list(sampler) for sampler in ranks), strict=True))
        assert len(steps) == n // step  # the partial last step is dropped, as on one device
        seen = []
        for parts in steps:
            sizes = sorted(len(p) for p in parts)
            assert sum(sizes) == step and sizes[-1] - sizes[0] <= 1
            joined = [i for p in parts for i in p]
            assert len(set(joined)) == step  # no image twice within a step
            seen += joined
        assert len(seen) == len(set(seen)) == (n // step) * step  # nor twice in the epoch
        if epoch == 0:
            first_epoch = seen
    assert seen != first_epoch  # a new permutation every epoch
    again = EpochSteps(n, step, 0, world, seed=7)
    again.set_epoch(1)
    assert list(again) == [parts[0] for parts in steps]  # a function of (seed, epoch)


def test_one_process_draws_what_randomsampler_and_batchsampler_drew() -> None:
    torch.manual_seed(3)
    before = list(BatchSampler(RandomSampler(range(103)), 10, drop_last=True))
    torch.manual_seed(3)
    assert list(EpochSteps(103, 10)) == before  # one-device runs repeat exactly


@pytest.mark.parametrize("n, world", [(201, 2), (10, 3), (5, 5)])
def test_every_test_image_is_evaluated_exactly_once(n: int, world: int) -> None:
    images = [i for rank in range(world) for batch in evaluation_shard(n, 4, rank, world)
              for i in batch]
    assert sorted(images) == list(range(n))


def test_shard_weights_make_the_averaged_loss_the_mean_over_the_step() -> None:
    losses = torch.rand(125)
    parts = torch.tensor_split(losses, 2)
    averaged = sum(p.mean() * shard_loss_weight(len(p), 2, 125) for p in parts) / 2
    assert averaged.item() == pytest.approx(losses.mean().item(), rel=1e-6)


def test_ddp_that_trains_the_one_device_net_keeps_its_hash() -> None:
    one = config_hash(compose([]))
    assert config_hash(compose(["trainer=ddp", "trainer.devices=4"])) == one
    assert config_hash(compose(["trainer=ddp", "trainer.devices=1",
                                "trainer.sync_batchnorm=false"])) == one
    unsynced = [config_hash(compose(["trainer=ddp", f"trainer.devices={d}",
                                     "trainer.sync_batchnorm=false"])) for d in (2, 4)]
    per_device = config_hash(compose(["trainer=ddp", "data.batch_rule=per_device"]))
    assert len({one, *unsynced, per_device}) == 4  # each trains a different net


def test_per_device_batches_scale_the_whole_schedule_linearly() -> None:
    one = build_schedule_from(compose([]))
    four = build_schedule_from(compose(["trainer=ddp", "trainer.devices=4",
                                        "data.batch_rule=per_device"]))
    for t in (0.0, 0.5, 1.7, 5.0):
        assert four.lr(t) == pytest.approx(4 * one.lr(t))


@pytest.mark.parametrize("overrides, says", [
    (["trainer.devices=2"], "add trainer=ddp"),
    (["trainer=ddp", "trainer.num_nodes=0"], "trainer.num_nodes=0 is not allowed"),
    (["trainer=ddp", "trainer.num_nodes=2", "trainer.devices=2"],
     "cannot give each of 4 devices"),  # several nodes: the world is nodes x devices
    (["trainer=ddp", "trainer.devices=auto"], "trainer.devices=auto is not allowed"),
    (["trainer=ddp", "trainer.devices=8", "data.batch_size=5"], "cannot be split over 8"),
    (["trainer=ddp", "data.batch_rule=per_device", "data.batch_size=600"],
     "more than the 1000 training images"),
    (["trainer=ddp", "data.batch_rule=twice"], "data.batch_rule=twice is unknown"),
    (["trainer=ddp", "trainer.devices=3"], "cannot give each of 3 devices"),
])
def test_spreads_that_cannot_work_are_refused_in_one_sentence(overrides, says) -> None:
    with pytest.raises(ConfigError, match=says):
        check_data_parallel(compose(overrides), train_images=1000, test_images=2)
