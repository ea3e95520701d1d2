"""The Grafana dashboard in deploy/ only charts metrics that Orchid exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orchid.telemetry.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "orchid-dashboard.json"


def test_every_panel_queries_an_exported_metric() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exported = {family.name for family in Metrics().registry.collect()}
    exported |= {
        "orchid_jobs",
        "orchid_works",
        "orchid_workflows",
        "orchid_metrics_scrape_query_seconds",
    }
    assert dash["panels"] and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in dash["panels"]:
        for target in panel["targets"]:
            names = set(
                re.findall(r"\b(orchid_[a-z_]+?)(?:_bucket|_count|_sum|_total)?\b", target["expr"])
            )
            assert names, target["expr"]
            for name in names:
                assert name in exported, (panel["title"], name)
