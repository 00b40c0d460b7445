"""Postmortem and customer-update drafts, the facts side: what happened, read from the data.

::

    build_postmortem(con, incident, settings=…) → Postmortem   (gather.py: the facts)

Modules: ``model`` (the facts' dataclasses), ``gather`` (reading them), ``evidence`` (the
cause's evidence and the classes ruled out).  The words — the JSON form with every fact as a
field and its sentences in a language, the catalogues — are :mod:`whatchanged.present.postmortem`.
"""

from __future__ import annotations

from whatchanged.engine.postmortem.gather import build_postmortem
from whatchanged.engine.postmortem.model import Postmortem

__all__ = ["Postmortem", "build_postmortem"]
