"""The presentation layer: how results and errors look to the outside, defined once.

Used by the API, the command line (``api/cli_*``) and the dashboards; imports only the engine
(``api → dashboards → present → engine ← ingest``, ``tests/test_layers.py``):

- :mod:`whatchanged.present.status` — the one table from the error tree to HTTP statuses
  (problem+json in the API, error pages in the dashboards);
- :mod:`whatchanged.present.shapes` — one JSON shape per resource (incident, cause, change,
  anomaly, availability, batch summary), printed by ``--json`` and served by the API;
- :mod:`whatchanged.present.report` — the batch run's Markdown report.
"""
