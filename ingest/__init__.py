"""Readers: one module per input format, each turning a file or payload into the normalised
tables of :mod:`whatchanged.engine.schema`.

What other layers use: :mod:`~whatchanged.ingest.registry` (which reader takes a file),
:mod:`~whatchanged.ingest.pipeline` (read and commit files), the readers' ``parse_payload``
(the API's webhooks), :mod:`~whatchanged.ingest.collect` and
:mod:`~whatchanged.ingest.sources` (live collection).  Imports only the engine.
"""
