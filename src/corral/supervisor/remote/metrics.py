"""Per-upstream gauges for `/metrics`: each remote replica's health and outstanding requests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily

from corral.supervisor.child_process import ChildProcess


def upstream_metrics(children: Mapping[str, ChildProcess]) -> Iterator[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "corral_upstream_up",
        "1 while a remote model's replica answers, 0 while it is ejected",
        labels=["model", "upstream"],
    )
    outstanding = GaugeMetricFamily(
        "corral_upstream_outstanding",
        "Requests open on a remote model's replica",
        labels=["model", "upstream"],
    )
    for model_id, child in children.items():
        if child.stats is None or not child.alive:
            continue
        for replica in child.stats.upstreams:
            up.add_metric([model_id, replica.url], 1.0 if replica.healthy else 0.0)
            outstanding.add_metric([model_id, replica.url], replica.outstanding)
    yield from (up, outstanding)
