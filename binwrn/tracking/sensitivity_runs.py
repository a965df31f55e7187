"""A sensitivity ranking read back from the tracking store (paper 3, spec 3.6).

A sensitivity run trains with one layer alone binary (`iterative.order=single
iterative.layer=<name>`) and measures `val/acc` on the held-out split (data.val_size). Every
run is tagged with its network (`binwrn.network`: data set, net, binarizer, smoke or not),
so `iterative.ranking=store` finds, for each layer of the same network, the newest FINISHED
such run, e.g. those of `make sweep SWEEP=p3_sensitivity`.
"""

from __future__ import annotations

from binwrn.errors import ConfigError
from binwrn.tracking.credentials import redact_uri

NETWORK_TAG = "binwrn.network"
NET_TAG = "binwrn.net"                   # the net alone (vgg5, resnet20, mlp300-100, wrn20-10)
LAYER_NUMBER_TAG = "binwrn.layer_number"  # a single-layer run's layer, 1..L in forward order
METRIC = "val/acc"


def stored_accuracy(uri: str, experiment: str, network: str,
                    layers: list[str]) -> dict[str, float]:
    """layer -> validation accuracy of its newest finished single-layer run."""
    from binwrn.tracking.store import open_client

    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id], max_results=5000, order_by=["attributes.start_time DESC"],
        filter_string=(f"tags.`{NETWORK_TAG}` = '{network}' and "
                       "params.`iterative.order` = 'single' and attributes.status = 'FINISHED'"))
    accuracy: dict[str, float] = {}
    for run in runs:
        layer, acc = run.data.params.get("iterative.layer"), run.data.metrics.get(METRIC)
        if layer in layers and acc is not None:
            accuracy.setdefault(layer, acc)
    missing = [name for name in layers if name not in accuracy]
    if missing:
        raise ConfigError(f"iterative.ranking=store found no finished sensitivity run of "
                          f"{', '.join(missing)} for {network} in {redact_uri(uri)} (experiment "
                          f"{experiment}): run them first (make sweep SWEEP=p3_sensitivity, "
                          "with SMOKE=1 for a smoke p3_orders), or give a ranking JSON.")
    return accuracy
