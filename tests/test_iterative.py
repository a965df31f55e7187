"""Paper 3's layer-by-layer binarization (spec 3.3) and unscaled sign (spec 3.2) on the WRN."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch
from torch.nn import functional as F

from binwrn.bench.measure import synthetic_images
from binwrn.configuration.build import binarization_order, build_model
from binwrn.configuration.compose import compose
from binwrn.configuration.identity import config_hash, curated_params
from binwrn.data.datamodule import DeviceAugmentedData
from binwrn.errors import ConfigError, Interrupted
from binwrn.models import BinaryConv2d, WideResNet
from binwrn.models.layer_order import (
    binarizable_names,
    ranking_record,
    resolve_order,
    set_binary_layers,
)
from binwrn.train.checkpoints import EpochCheckpoints
from binwrn.train.iterative import METRIC, LayerByLayerBinarization
from binwrn.train.module import ImageClassifier
from binwrn.train.schedules import SGDR

# WRN depth 8 (n=1): the 8 convs in forward order.
NAMES = ["conv_in", "blocks.0.conv1", "blocks.0.conv2", "blocks.1.conv1", "blocks.1.conv2",
         "blocks.2.conv1", "blocks.2.conv2", "conv_out"]


def _binary_now(model: WideResNet) -> list[str]:
    """Names of the convs whose forward weight is binary right now, found from the weights."""
    return [name for name, conv in model.conv_layers()
            if not torch.equal(conv.effective_weight(), conv.weight)]


def _schedule(order: list[str], epochs_per_layer: int, epochs: int) -> list[list[str]]:
    """The binary layers at each epoch's start, as the callback sets them."""
    model = WideResNet(depth=8, width=1)
    callback = LayerByLayerBinarization(order, epochs_per_layer)
    seen = []
    for epoch in range(epochs):
        set_binary_layers(model, set(callback.binary_at(epoch)))
        seen.append(_binary_now(model))
    return seen


def test_layer_names_are_the_convs_in_forward_order() -> None:
    assert binarizable_names(WideResNet(depth=8, width=1)) == NAMES
    assert binarizable_names(WideResNet(depth=8, width=1, first_last_fp32=True)) == NAMES[1:-1]
    assert binarizable_names(WideResNet(depth=8, width=1, bits=32)) == []


@pytest.mark.parametrize("name", ["forward", "reverse", "explicit"])
def test_binary_layers_follow_the_schedule_exactly(name: str) -> None:
    explicit = ["blocks.1.conv2", "conv_out", "conv_in", "blocks.0.conv1", "blocks.2.conv2",
                "blocks.0.conv2", "blocks.1.conv1", "blocks.2.conv1"]
    order = resolve_order(explicit if name == "explicit" else name, NAMES, 0, None)
    assert order == {"forward": NAMES, "reverse": NAMES[::-1], "explicit": explicit}[name]
    seen = _schedule(order, epochs_per_layer=2, epochs=20)
    for epoch, binary in enumerate(seen):
        # order[i] turns binary at epoch i*E and stays; all 8 from epoch 14 = (8-1)*2.
        expected = set(order[:min(epoch // 2 + 1, 8)])
        assert set(binary) == expected, epoch
    assert [len(b) for b in seen[:6]] == [1, 1, 2, 2, 3, 3] and len(seen[14]) == 8


def test_random_order_is_a_permutation_fixed_by_the_seed() -> None:
    first = resolve_order("random", NAMES, 316, None)
    assert first == resolve_order("random", NAMES, 316, None)
    assert sorted(first) == sorted(NAMES) and first != NAMES
    assert resolve_order("random", NAMES, 317, None) != first


def _ranking(tmp_path, record: dict) -> str:
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(record))
    return str(path)


def test_ascend_and_descend_follow_the_ranking(tmp_path) -> None:
    accuracy = {name: 0.5 + 0.01 * i for i, name in enumerate(NAMES)}
    accuracy["conv_out"] = 0.1  # the most harmful alone: last in ascend
    record = ranking_record(accuracy, NAMES)
    assert record["ascend"][0] == "blocks.2.conv2" and record["ascend"][-1] == "conv_out"
    assert record["descend"] == record["ascend"][::-1]
    path = _ranking(tmp_path, record)
    assert resolve_order("ascend", NAMES, 0, path) == record["ascend"]
    assert resolve_order("descend", NAMES, 0, path) == record["descend"]


@pytest.mark.parametrize("ascend, words", [
    (NAMES[:-1], "missing ['conv_out']"),
    ([*NAMES, "fc"], "unknown ['fc']"),
    ([*NAMES[:-1], "conv_in"], "repeated ['conv_in']"),
])
def test_a_ranking_that_is_not_a_permutation_is_refused(tmp_path, ascend, words) -> None:
    path = _ranking(tmp_path, {"ascend": ascend})
    with pytest.raises(ConfigError, match=r"does not name each 1-bit layer once") as err:
        resolve_order("ascend", NAMES, 0, path)
    assert words in str(err.value)


@pytest.mark.parametrize("overrides, words", [
    (["iterative.order=sideways"], "iterative.order=sideways is not supported"),
    (["iterative.order=ascend"], "needs iterative.ranking"),
    (["iterative.order=forward", "iterative.epochs_per_layer=0"], "epochs_per_layer=0"),
    (["iterative.order=forward", "iterative.ranking=/nowhere.json",
      "iterative.order=descend"], "iterative.ranking=/nowhere.json cannot be read"),
    (["iterative.order=[conv_in]"], "missing"),
    (["iterative.order=forward", "model.bits=32"], "needs 1-bit layers"),
])
def test_bad_iterative_settings_get_one_sentence(overrides, words) -> None:
    cfg = compose(["model.depth=8", "model.width=1", *overrides])
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        binarization_order(cfg, build_model(cfg))


def test_inactive_layer_uses_fp32_weight_and_active_one_the_binarizer() -> None:
    torch.manual_seed(0)
    he, none = BinaryConv2d(16, 8, 3), BinaryConv2d(16, 8, 3, scale="none")
    for conv in (he, none):
        conv.set_binary(False)
        assert torch.equal(conv.effective_weight(), conv.weight)
        conv.set_binary(True)
    assert torch.equal(he.effective_weight(), torch.sign(he.weight) * he.alpha)
    assert torch.equal(none.effective_weight(), torch.sign(none.weight))
    assert set(none.effective_weight().unique().tolist()) == {-1.0, 1.0}


def test_unscaled_sign_passes_the_gradient_unchanged_and_unclipped() -> None:
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 4, 3, scale="none")
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 5.0  # far outside [-1, 1]: paper 3 does not clip (spec 3.2)
    x = torch.randn(2, 4, 6, 6)
    conv(x).square().sum().backward()
    w_hat = torch.sign(conv.weight.detach()).requires_grad_()
    F.conv2d(x, w_hat, None, 1, 1).square().sum().backward()
    assert torch.equal(conv.weight.grad, w_hat.grad) and conv.weight.grad[0, 0, 0, 0] != 0


def test_the_switch_is_in_checkpoints_and_paper1_ones_without_it_load_all_binary() -> None:
    model = WideResNet(depth=8, width=1)
    set_binary_layers(model, {"conv_in"})
    fresh = WideResNet(depth=8, width=1)
    fresh.load_state_dict(model.state_dict())  # strict
    assert _binary_now(fresh) == ["conv_in"]  # the model as trained (issue 16)
    old = {k: v for k, v in model.state_dict().items() if "binary_active" not in k}
    fresh.load_state_dict(old)  # strict still: a checkpoint from before the switch was stored
    assert _binary_now(fresh) == NAMES


def test_an_fp32_phase_trains_the_latent_weight_directly() -> None:
    conv = BinaryConv2d(4, 4, 3)
    conv.set_binary(False)
    x = torch.randn(2, 4, 6, 6)
    conv(x).sum().backward()
    w = conv.weight.detach().clone().requires_grad_()
    F.conv2d(x, w, None, 1, 1).sum().backward()
    assert torch.equal(conv.weight.grad, w.grad)


def test_new_keys_leave_the_paper1_hash_and_params_unchanged() -> None:
    # Hashes of the configs as they were before iterative.* existed (commit 9d0e2fa), whose
    # precision was `auto` (the default until issue 16).
    auto = "trainer.precision=auto"
    assert config_hash(compose([auto])) == "bb26442466369516"
    assert config_hash(compose([auto, "model.bits=32"])) == "51eb3124e9e1f234"
    assert config_hash(compose([auto, "iterative.epochs_per_layer=3"])) == "bb26442466369516"
    forward = config_hash(compose([auto, "iterative.order=forward"]))
    assert forward != "bb26442466369516"
    assert forward != config_hash(compose([auto, "iterative.order=reverse"]))
    assert not any(k.startswith("iterative.") for k in curated_params(compose([])))
    assert curated_params(compose(["iterative.order=forward"]))["iterative.order"] == "forward"


class _Counts(pl.Callback):
    """The logged binary-layer count and the binary convs, at each epoch's end."""

    def __init__(self) -> None:
        self.counts: list[float] = []
        self.binary: list[list[str]] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.counts.append(float(trainer.callback_metrics[METRIC]))
        self.binary.append(_binary_now(module.model))


def test_lightning_fit_logs_one_more_binary_layer_per_epoch() -> None:
    torch.manual_seed(0)
    model = WideResNet(depth=8, width=1)
    order = resolve_order("reverse", binarizable_names(model), 0, None)
    counts = _Counts()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False,
                         callbacks=[LayerByLayerBinarization(order, 1), counts],
                         enable_checkpointing=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, enable_model_summary=False)
    data = DeviceAugmentedData(synthetic_images(40), synthetic_images(20, seed=1), batch_size=10)
    trainer.fit(ImageClassifier(model, SGDR(lr_max=0.1, lr_min=1e-5)), datamodule=data)
    assert counts.counts == [1.0, 2.0, 3.0]
    assert counts.binary == [["conv_out"], ["blocks.2.conv2", "conv_out"],
                             ["blocks.2.conv1", "blocks.2.conv2", "conv_out"]]


@pytest.mark.slow
def test_binwrn_run_records_the_schedule_and_order(tmp_path) -> None:
    from e2e import binwrn_run
    from mlflow import MlflowClient

    done = binwrn_run(tmp_path, "experiment=smoke", "dataset=digits", "trainer.max_epochs=3",
                      "iterative.order=forward", "iterative.epochs_per_layer=1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not fully binary" in done.stdout + done.stderr  # 8 layers, 3 epochs
    (run,) = done.runs()
    client = MlflowClient(f"sqlite:///{done.store}")
    history = client.get_metric_history(run.info.run_id, METRIC)
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert run.data.params["iterative.order"] == "forward"
    order = json.loads((tmp_path / client.download_artifacts(
        run.info.run_id, "iterative/order.json", str(tmp_path))).read_text())
    assert order == {"order": NAMES, "layers": NAMES, "epochs_per_layer": 1}


def test_a_resumed_fit_recomputes_the_binary_layers_from_the_epoch(tmp_path) -> None:
    torch.manual_seed(0)
    data = DeviceAugmentedData(synthetic_images(40), synthetic_images(20, seed=1), batch_size=10)

    def fit(epochs: int, ckpt=None) -> tuple[pl.Trainer, _Counts]:
        counts = _Counts()
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                             callbacks=[LayerByLayerBinarization(NAMES, 2), counts],
                             enable_checkpointing=False, enable_progress_bar=False,
                             num_sanity_val_steps=0, enable_model_summary=False)
        module = ImageClassifier(WideResNet(depth=8, width=1), SGDR(lr_max=0.1, lr_min=1e-5))
        trainer.fit(module, datamodule=data, ckpt_path=ckpt)
        return trainer, counts

    first, _ = fit(3)
    first.save_checkpoint(tmp_path / "last.ckpt")
    _, counts = fit(5, tmp_path / "last.ckpt")  # a fresh model: every layer binary until told
    assert counts.counts == [2.0, 3.0]  # epochs 3 and 4 (0-based), E=2
    assert counts.binary == [NAMES[:2], NAMES[:3]]


class _SigtermAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:  # as Lightning's handler marks a real SIGTERM
            trainer._signal_connector.received_sigterm = True


def test_a_run_stopped_mid_epoch_resumes_with_that_epoch_set_up(tmp_path) -> None:
    """Lightning skips on_train_epoch_start when it resumes mid-epoch (a SIGTERM checkpoint):
    the divergence flag and the binary layers are set up at train start as well."""
    data = DeviceAugmentedData(synthetic_images(40), synthetic_images(20, seed=1), batch_size=10)

    def trainer(epochs: int, *extra: pl.Callback) -> tuple[pl.Trainer, _Counts]:
        counts = _Counts()
        callbacks = [LayerByLayerBinarization(NAMES, 1), counts,
                     EpochCheckpoints(tmp_path, ends_cycle=lambda epochs_done: False), *extra]
        return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                          callbacks=callbacks, enable_checkpointing=False,
                          enable_progress_bar=False, num_sanity_val_steps=0,
                          enable_model_summary=False), counts

    module = lambda: ImageClassifier(WideResNet(depth=8, width=1), SGDR())  # noqa: E731
    first, _ = trainer(3, _SigtermAtStep(6))  # 4 steps per epoch: stops in epoch 1
    with pytest.raises(Interrupted, match="SIGTERM at epoch 2"):
        first.fit(module(), datamodule=data)
    second, counts = trainer(3)
    second.fit(module(), datamodule=data, ckpt_path=tmp_path / "last.ckpt")
    assert counts.binary == [NAMES[:2], NAMES[:3]]  # epochs 1 (resumed) and 2
