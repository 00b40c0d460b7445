"""``GET /metrics``: the live sources' health and the explain latency, in Prometheus format."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import start_server
from tests.servers import free_port
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.collect import Collector
from whatchanged.ingest.sources import load_sources

DATA = Path(__file__).parents[1] / "data"


def test_metrics_show_sources_and_explain_latency(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    (home / "notices").mkdir(parents=True)
    (home / "notices" / "n.ics").write_bytes((DATA / "maintenance-ical" / "ical_ical1.ics").read_bytes())
    (home / "sources.toml").write_text(
        f"""
[collect]
retries = 0
[[statuspage]]
name = "dead"
url = "http://127.0.0.1:{free_port()}"
[[ical]]
name = "notices"
folder = "notices"
"""
    )
    wh = Warehouse(home)
    collector = Collector(wh, load_sources(home))
    try:
        collector.run_pass()
    finally:
        collector.close()
    server = start_server(load_settings(home=home, tz="UTC"))
    try:
        httpx.get(server.api + "/explain", params={"at": "2020-01-01T00:00:00Z"}, timeout=60)
        r = httpx.get(server.url + "/metrics", timeout=30)
    finally:
        server.stop()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }
    up = "whatchanged_source_up"
    assert samples[(up, (("kind", "statuspage"), ("source", "dead")))] == 0
    assert samples[(up, (("kind", "ical"), ("source", "notices")))] == 1
    assert (
        samples[("whatchanged_source_consecutive_failures", (("kind", "statuspage"), ("source", "dead")))]
        == 1
    )
    assert samples[("whatchanged_source_rows_added_total", (("kind", "ical"), ("source", "notices")))] == 1
    assert ("whatchanged_source_lag_seconds", (("kind", "ical"), ("source", "notices"))) in samples
    assert samples[("whatchanged_explain_duration_seconds_count", ())] == 1
    assert samples[("whatchanged_warehouse_commits", ())] == 1
