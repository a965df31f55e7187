"""Multi-node pieces in process: which processes a cluster started (from the variables srun
and torchrun set, read by Lightning's own environments), refusals of configs that do not
match them, the config hash across node counts, ImageNet's streamed loader split between
ranks, one cache builder per machine, and the SLURM job size a sweep is submitted with."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from binwrn.bench.synthetic_imagenet import write_jpeg_tree
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash
from binwrn.configuration.parallel import check_launch, world_size
from binwrn.data import image_folder
from binwrn.data.imagenet import list_imagenet
from binwrn.data.imagenet_loader import StreamingImageData, worker_count
from binwrn.data.imagenet_transforms import CropSettings
from binwrn.errors import ConfigError
from binwrn.sweeps.slurm import check_jobs_fit, slurm_job_shape
from binwrn.train.cluster import (
    follower_hydra_overrides,
    launched_processes,
    started_as_follower,
)

SRUN_2x4 = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
            "SLURM_NODEID": "1", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "4",
            "SLURM_JOB_ID": "123456", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "gpu[07-08]",
            "SLURM_STEP_ID": "0"}
TORCHRUN_2x4 = {"TORCHELASTIC_RUN_ID": "none", "RANK": "6", "LOCAL_RANK": "2", "WORLD_SIZE": "8",
                "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1", "GROUP_WORLD_SIZE": "2",
                "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29500"}


@pytest.fixture
def env(monkeypatch):
    """A clean process environment, then the given launcher's variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("SLURM_", "TORCHELASTIC_")) or name in TORCHRUN_2x4:
            monkeypatch.delenv(name)

    def set_to(variables: dict) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
    return set_to


def test_srun_tasks_are_read_by_lightnings_slurm_environment(env) -> None:
    env(SRUN_2x4)
    launched = launched_processes()
    assert (launched.kind, launched.world, launched.nodes, launched.per_node) == ("srun", 8, 2, 4)
    assert (launched.rank, launched.environment.local_rank()) == (5, 1)
    assert launched.environment.main_address == "gpu07"  # the first node of the job
    assert launched.environment.main_port == 15000 + 3456  # from the job id, on every task
    assert not launched.environment.auto_requeue  # submitit requeues, not Lightning
    assert started_as_follower([])


def test_torchrun_wins_inside_a_slurm_job_and_names_its_processes(env) -> None:
    env({**SRUN_2x4, "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", **TORCHRUN_2x4})
    launched = launched_processes()
    assert (launched.kind, launched.world, launched.nodes, launched.per_node) == (
        "torchrun", 8, 2, 4)
    assert launched.rank == 6 and not launched.is_rank_zero


def test_one_process_or_an_interactive_allocation_is_not_a_cluster_launch(env) -> None:
    assert launched_processes() is None and not started_as_follower([])
    env({**SRUN_2x4, "SLURM_JOB_NAME": "interactive"})  # Lightning's rule for salloc shells
    assert launched_processes() is None
    env({**SRUN_2x4, "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "1", "SLURM_PROCID": "0"})
    assert launched_processes() is None  # one task: binwrn starts the ranks itself
    import os

    env({**SRUN_2x4, "SLURM_PROCID": "0"})
    del os.environ["SLURM_STEP_ID"]  # the batch script itself, not an srun task
    assert launched_processes() is None and not started_as_follower([])
    env({"SLURM_STEP_ID": str(0xFFFFFFFE)})  # SLURM's id of the batch step
    assert launched_processes() is None and not started_as_follower([])


def test_a_follower_writes_no_hydra_folder_and_a_sweep_is_never_a_follower(env) -> None:
    env(TORCHRUN_2x4)
    assert started_as_follower(["trainer=ddp"]) and not started_as_follower(["-m", "x=1,2"])
    assert "hydra.output_subdir=null" in follower_hydra_overrides()
    env({"RANK": "0"})
    assert not started_as_follower([])


@pytest.mark.parametrize("overrides, says", [
    (["trainer=ddp", "trainer.num_nodes=2", "trainer.devices=4"], None),
    (["trainer=ddp", "trainer.num_nodes=2", "trainer.devices=[0,1,2,3]"], None),
    (["trainer=ddp", "trainer.num_nodes=1", "trainer.devices=8"],
     r"srun started 2 node\(s\) x 4 process\(es\), but the config asks for "
     r"trainer.num_nodes=1 x trainer.devices=8: set trainer.num_nodes=2 trainer.devices=4"),
    ([], "srun started 8 binwrn-run processes, but this config trains on one device: add "
         "trainer=ddp trainer.num_nodes=2 trainer.devices=4"),
])
def test_a_config_that_does_not_match_the_srun_tasks_is_refused(env, overrides, says) -> None:
    env(SRUN_2x4)
    cfg = compose(overrides)
    if says is None:
        check_launch(cfg, launched_processes())
    else:
        with pytest.raises(ConfigError, match=says):
            check_launch(cfg, launched_processes())


def test_several_nodes_without_a_cluster_launch_are_refused_in_one_sentence(env) -> None:
    with pytest.raises(ConfigError, match="trainer.num_nodes=2 needs one binwrn-run process per "
                                          "device on every node.*srun or torchrun"):
        check_launch(compose(["trainer=ddp", "trainer.num_nodes=2"]), None)
    check_launch(compose(["trainer=ddp"]), None)  # one machine: binwrn starts its ranks


def test_the_paper_net_on_any_node_count_hashes_as_its_one_device_twin() -> None:
    one = config_hash(compose([]))
    two_by_eight = compose(["trainer=ddp", "trainer.num_nodes=2", "trainer.devices=8"])
    assert world_size(two_by_eight.trainer) == 16
    assert config_hash(two_by_eight) == one  # global batch, synchronised BN, lr unchanged
    ghost = [config_hash(compose(["trainer=ddp", f"trainer.num_nodes={n}",
                                  f"trainer.devices={d}", "trainer.sync_batchnorm=false"]))
             for n, d in ((2, 2), (1, 4), (1, 2))]
    assert ghost[0] == ghost[1] != ghost[2] != one  # unsynced BN: the world size is the net
    with pytest.raises(ConfigError, match="trainer.num_nodes=0 is not allowed"):
        world_size(compose(["trainer=ddp", "trainer.num_nodes=0"]).trainer)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    write_jpeg_tree(root, classes=3, train_per_class=7, val_per_class=3)
    return root


def test_each_rank_streams_its_part_of_every_step_and_of_the_val_set(jpegs: Path) -> None:
    train, val = list_imagenet(jpegs, 3)  # 21 training images, 9 val images
    crops = CropSettings(size=32, scale_range=(32, 48), eval_resize=36,
                         multi_crop_scales=(32, 36, 40, 44, 48))
    ranks = []
    for rank in range(3):
        data = StreamingImageData(train, val, crops, batch_size=10, eval_batch_size=4,
                                  workers=0, step_batch=10, seed=5)
        data.trainer = SimpleNamespace(global_rank=rank, world_size=3)
        ranks.append(data)
    steps = [list(d.train_dataloader().batch_sampler) for d in ranks]
    assert [len(s) for s in steps] == [2, 2, 2]  # floor(21 / 10) steps, as on one device
    for parts in zip(*steps, strict=True):
        joined = [i for part in parts for i in part]
        assert sorted(len(p) for p in parts) == [3, 3, 4] and len(set(joined)) == 10
    images, labels = next(iter(ranks[1].train_dataloader()))
    assert images.shape[0] == len(steps[1][0]) == labels.shape[0]  # its own part, decoded
    tested = [i for d in ranks for batch in d.val_dataloader().batch_sampler for i in batch]
    assert sorted(tested) == list(range(9))  # every val image once, by one rank
    multi = [i for d in ranks for batch in d.multi_crop_dataloader().batch_sampler
             for i in batch]
    assert sorted(multi) == list(range(9))


def test_loader_workers_are_per_rank(monkeypatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert worker_count("auto", ranks_on_node=8) == 4  # the machine's cores, shared
    assert worker_count(6, ranks_on_node=8) == 6
    monkeypatch.setenv("SLURM_NTASKS", "16")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "10")
    assert worker_count("auto", ranks_on_node=8) == 10  # the task's own CPUs


def test_one_rank_of_a_machine_decodes_the_cache_the_others_read_it(tmp_path, monkeypatch):
    from helpers_data import write_image_folder

    root = tmp_path / "tree"
    write_image_folder(root, ["a", "b"], n_train_per_class=3, n_test_per_class=1)
    decodes = []
    slow = image_folder._decode_parallel

    def counted(paths, size):
        decodes.append(len(paths))
        time.sleep(0.5)  # the other "ranks" arrive while this one decodes
        return slow(paths, size)

    monkeypatch.setattr(image_folder, "_decode_parallel", counted)
    results = [None] * 3

    def rank(r: int) -> None:
        results[r] = image_folder.read_image_folder(root, "train", 2, 32, tmp_path / "cache")

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert decodes == [6]  # decoded once; the others waited and read the cache
    assert all(np.array_equal(r.images, results[0].images) for r in results)


def test_a_sweep_on_two_nodes_is_submitted_as_two_nodes_of_one_task_per_gpu() -> None:
    shape = slurm_job_shape(["dataset=digits", "trainer=ddp", "trainer.num_nodes=2",
                             "trainer.devices=8", "hydra/launcher=slurm"])
    assert (shape.nodes, shape.tasks_per_node, shape.gpus_per_node, shape.gpus_per_task) == (
        2, 8, 8, 1)
    header = shape.sbatch_header()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --signal=USR2@120"):
        assert line in header.splitlines()
    assert "--gpus-per-task" not in header  # every task sees its node's GPUs (Lightning)
    one = slurm_job_shape(["dataset=digits", "hydra/launcher=slurm"])
    assert (one.nodes, one.tasks_per_node, one.gpus_per_node) == (1, 1, 1)
    big = {"job_003": compose(["dataset=digits", "trainer=ddp", "trainer.num_nodes=4",
                               "trainer.devices=8"])}
    with pytest.raises(ConfigError, match="job_003 needs 4 node.* submitted as 2 x 8"):
        check_jobs_fit(shape, big)
