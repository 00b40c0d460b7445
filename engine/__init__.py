"""The engine: every step of the analysis, from the warehouse to the explanation.

The pipeline (``docs/architecture.md``): :mod:`~whatchanged.engine.warehouse` (storage) →
:mod:`~whatchanged.engine.baseline` → :mod:`~whatchanged.engine.detect` (anomalies) and
:mod:`~whatchanged.engine.outages` → :mod:`~whatchanged.engine.incidents` →
:mod:`~whatchanged.engine.candidates` → :mod:`~whatchanged.engine.rank` →
:mod:`~whatchanged.engine.explain`; beside it :mod:`~whatchanged.engine.availability` and
:mod:`~whatchanged.engine.batch`.  What other layers use: those modules' public functions, the
results of :mod:`~whatchanged.engine.model`, the schemas of :mod:`~whatchanged.engine.schema`,
the errors of :mod:`~whatchanged.engine.errors` and :mod:`~whatchanged.engine.settings`.  The
engine imports no other layer.
"""
