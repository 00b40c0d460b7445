"""Which reader reads which file: autodetection and ``--format``.

Readers are tried in the order of :data:`READER_MODULES`; the first whose
``sniff`` accepts the file reads it.  When none does, the error lists what
each one expected.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from whatchanged.engine.errors import ConfigError, InputError
from whatchanged.ingest.base import Reader

#: Reader modules, most specific first.  Each defines ``READER``.
READER_MODULES: tuple[str, ...] = (
    # inventory, metrics and check states (issue 2)
    "services_csv",
    "dependencies_csv",
    "prometheus_json",
    "prometheus_text",
    "nagios",
    "pingdom",
    # change events: deploys and maintenance notices (issue 3)
    "works",
    "ical",
    "feed",
    "statuspage",
    "pagerduty",
    "github_deploy",
    "datadog",
    "grafana",
    "git_log",
    "deploy_jsonl",
    "deploy_csv",
    "metrics_stacked",
    # generic tabular metrics last: they accept any CSV with a timestamp column
    "metrics_parquet",
    "metrics_csv",
)

SNIFF_BYTES = 8192

#: One line (or the start of one) of each format, for ``whatchanged formats``.
EXAMPLES: dict[str, str] = {
    "services": "service,kind,datacenter,rack,switch,host,app,critical,tags,owner",
    "prometheus_json": '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"service":"www-01"},'
    '"values":[[1290015780,"171.3"]]}]}}',
    "prometheus_text": 'http_requests_total{service="www-01"} 1027 1290015780000',
    "nagios": "[1290015780] SERVICE ALERT: www-01;HTTP;CRITICAL;HARD;3;CRITICAL - Socket timeout",
    "pingdom": '{"checks":[{"id":8812345,"name":"Main site www","hostname":"www.example.com","status":"up"}]}',
    "works": "FS#4321 | Network:: P19 switches maintenance",
    "ical": "BEGIN:VCALENDAR … X-MAINTNOTE-MAINTENANCE-ID:WorkOrder-31415 …",
    "feed": '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>Core router replacement — DC2</title>…',
    "statuspage": '{"page":{"name":"Example"},"incidents":[{"id":"p31zjtct2jer","name":"Elevated errors",…}]}',
    "pagerduty": '{"routing_key":"…","payload":{"summary":"Deploy checkout v42","timestamp":"2010-11-17T18:13:00Z"}}',
    "github_deploy": '{"deployment_status":{"state":"success",…},"deployment":{"environment":"production",…}}',
    "datadog": '{"data":{"type":"event","attributes":{"category":"change","title":"Deploy editor 4.12.0",…}}}',
    "grafana": '[{"id":1,"time":1290015180000,"text":"Deploy editor 4.12.0","tags":["deploy"]}]',
    "git_log": "9f1c2ab7e0d4…→2010-11-17T18:05:12+01:00→alice→tag: deploy/prod/www/20101117T1705Z→www→Merge !812"
    " (→ is a tab)",
    "deploy_jsonl": '{"id":"REL-4146","timestamp":"2010-11-17T18:13:00+01:00","service":"editor","version":"4.12.0"}',
    "deploy_csv": "id,timestamp,service,version,author,description",
    "dependencies": "service,depends_on",
    "metrics_stacked": "microservice,PetSite,… / metric,latency,… / statistic,p99,… (three header rows)",
    "metrics_parquet": "columns timestamp, service, metric, value (or one column a metric)",
    "metrics_csv": "timestamp,service,metric,value",
}


def readers() -> list[Reader]:
    out = []
    for name in READER_MODULES:
        module = importlib.import_module(f"whatchanged.ingest.{name}")
        out.append(module.READER)
    return out


def by_name(name: str) -> Reader:
    for reader in readers():
        if reader.name == name:
            return reader
    known = ", ".join(r.name for r in readers())
    raise ConfigError(f"--format: expected one of {known}, found {name!r}")


def detect(path: Path) -> Reader:
    """The reader for ``path``, or an InputError saying why none fits."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", file=str(path)) from None
    for reader in readers():
        if reader.sniff(path, head):
            return reader
    first = head.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
    raise InputError(
        f"format not recognised (starts with {first!r}); "
        "'whatchanged formats' lists the formats, --format forces one",
        file=str(path),
    )
