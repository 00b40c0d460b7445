"""Change events at query time: list them and resolve their scope to services.

A change stores the names its source gave (``scope``: services, apps,
datacenters, racks, switches, hosts — see :data:`whatchanged.engine.schema.SCOPE`).
Which inventory services those names mean is decided here, when the change
is read, against the *current* ``services`` view — so an inventory or alias
update applies to old notices too.

This is the one scope matcher: ``explain`` (maintenance scope, hosting
"covered"), ``changes``, the dashboards' per-service changes and planned
maintenance in availability all use the resolved services.

Resolution (:func:`resolve_scope`):

1. every scope name is expanded through the aliases (``Paris 19`` →
   datacenter ``P19``); the original name is kept as well;
2. for notices (kinds maintenance, provider_incident, infra_alert) the title
   and description are scanned for alias names, and for inventory datacenter,
   switch, rack, host, service and app names (whole words, case-insensitive,
   ``-`` counting as a word character so ``p19-sw-01`` does not name the
   datacenter ``P19``; ranges such as ``p19-sw-01 to p19-sw-08`` are
   expanded): "Core router replacement — DC2" with no component is DC2.  A
   notice's component and object names (``services``, ``hosts``) are read the
   same way, so a component named after a switch covers the services behind
   it.  Deploys and config changes are resolved from their structured scope
   only;
3. a service is in scope when one of these matches it (case-insensitive):

   ============  =============================================
   scope key     inventory columns it matches
   ============  =============================================
   services      service, app, host (BCOP object ids are often host names)
   apps          app, service
   datacenters   datacenter (``RBX`` also matches ``RBX4`` and vice versa;
                 ``RBX4`` does not match ``RBX2``)
   racks         rack
   switches      switch
   hosts         host, service
   ============  =============================================

Aliases file (YAML, :func:`load_aliases`)::

    # provider name → inventory name(s), per scope key; keys case-insensitive
    datacenters:
      Paris 19: P19
      Roubaix: RBX
    switches:
      p19-core: [p19-sw-01, p19-sw-02]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from whatchanged.engine.errors import ConfigError
from whatchanged.engine.model import Change
from whatchanged.engine.schema import CHANGE_KINDS, SCOPE_KEYS
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot

#: kinds whose title/description are scanned for names (notices, not deploys)
TEXT_KINDS = ("maintenance", "provider_incident", "infra_alert")
#: scope key → inventory columns it matches
MATCHES: dict[str, tuple[str, ...]] = {
    "services": ("service", "app", "host"),
    "apps": ("app", "service"),
    "datacenters": ("datacenter",),
    "racks": ("rack",),
    "switches": ("switch",),
    "hosts": ("host", "service"),
}
#: inventory column → the scope key a name found in text belongs to
TEXT_COLUMNS = {
    "datacenter": "datacenters",
    "switch": "switches",
    "rack": "racks",
    "host": "hosts",
    "service": "services",
    "app": "apps",
}
_DC_RE = re.compile(r"^([A-Z]+?)(\d*)$")
_RANGE_RE = re.compile(
    r"(?<![\w-])([A-Za-z][\w.-]*?)(\d+)\s*(?:to|through|thru|à|->|–|—|\.\.)\s*(?:([A-Za-z][\w.-]*?))?(\d+)(?![\w-])",
    re.IGNORECASE,
)
_MAX_RANGE = 512

Aliases = Mapping[str, Mapping[str, tuple[str, ...]]]


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def load_aliases(path: Path | str | None) -> dict[str, dict[str, tuple[str, ...]]]:
    """Read an aliases YAML file (format in the module doc); None or a missing file → no aliases.

    Parsed once per file version (path, mtime, size): explaining one incident asks for the
    aliases several times."""
    if path is None:
        return {}
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {}
    if not path.is_file():
        return {}
    parsed = _parsed_aliases(str(path), st.st_mtime_ns, st.st_size)
    return {key: dict(table) for key, table in parsed.items()}


@functools.lru_cache(maxsize=16)
def _parsed_aliases(name: str, _mtime_ns: int, _size: int) -> dict[str, dict[str, tuple[str, ...]]]:
    path = Path(name)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable YAML aliases file ({str(exc).splitlines()[0]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{path}: expected a mapping of scope keys ({', '.join(SCOPE_KEYS)}), found {type(doc).__name__}"
        )
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for key, mapping in doc.items():
        if key not in SCOPE_KEYS:
            raise ConfigError(f"{path}: key {key!r}: expected one of {', '.join(SCOPE_KEYS)}")
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise ConfigError(
                f"{path}: {key}: expected 'provider name: inventory name' pairs, found {mapping!r}"
            )
        table: dict[str, tuple[str, ...]] = {}
        for alias, target in mapping.items():
            targets = target if isinstance(target, list) else [target]
            if (
                not all(isinstance(t, str | int) and str(t).strip() for t in targets)
                or not str(alias).strip()
            ):
                raise ConfigError(
                    f"{path}: {key}: {alias!r}: expected a name or a list of names, found {target!r}"
                )
            table[_norm(str(alias))] = tuple(str(t).strip() for t in targets)
        out[key] = table
    return out


DEFAULT_ALIASES = Path(__file__).with_name("default_aliases.yaml")


def aliases_path(settings: Settings) -> Path | None:
    """The aliases file in force: the ``aliases_file`` setting (which must exist), else
    ``<home>/aliases.yaml``, else the packaged default (OVH datacenter names → codes)."""
    if settings.aliases_file is not None:
        if not Path(settings.aliases_file).is_file():
            raise ConfigError(f"setting 'aliases_file': no such file {settings.aliases_file}")
        return Path(settings.aliases_file)
    beside = Path(settings.home) / "aliases.yaml"
    if beside.is_file():
        return beside
    return DEFAULT_ALIASES if DEFAULT_ALIASES.is_file() else None


def aliases_for(settings: Settings) -> dict[str, dict[str, tuple[str, ...]]]:
    """The aliases in force for ``settings`` (see :func:`aliases_path`)."""
    return load_aliases(aliases_path(settings))


@dataclass(frozen=True)
class Inventory:
    """The ``services`` view as rows of (service, datacenter, rack, switch, host, app)."""

    rows: tuple[tuple[str, str | None, str | None, str | None, str | None, str | None], ...]

    COLUMNS = ("service", "datacenter", "rack", "switch", "host", "app")

    @classmethod
    def load(cls, con: Snapshot) -> Inventory:
        got = con.sql(
            "SELECT service, datacenter, rack, switch, host, app FROM services ORDER BY service"
        ).fetchall()
        return cls(tuple((r[0], r[1], r[2], r[3], r[4], r[5]) for r in got))

    def names(self, column: str) -> set[str]:
        i = self.COLUMNS.index(column)
        return {v for r in self.rows if (v := r[i])}

    @cached_property
    def index(self) -> dict[str, dict[str, set[str]]]:
        """Column → value → services having it (datacenters as written, other names folded)."""
        out: dict[str, dict[str, set[str]]] = {c: {} for c in self.COLUMNS}
        for row in self.rows:
            for col, value in zip(self.COLUMNS, row, strict=True):
                if value:
                    key = value if col == "datacenter" else _norm(value)
                    out[col].setdefault(key, set()).add(row[0])
        return out

    @cached_property
    def known(self) -> dict[str, dict[str, str]]:
        """Folded name → name, per column that text may name."""
        return {col: {_norm(n): n for n in self.names(col)} for col in TEXT_COLUMNS}

    @cached_property
    def _simple(self) -> dict[str, str]:
        """Lower-cased name → name, for the names that are one run of word characters and ``-``."""
        names = {n for names in self.known.values() for n in names.values()}
        return {n.lower(): n for n in names if _RUN_RE.fullmatch(n)}

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """A regex finding the other switch, rack, host, service or app names in text (those
        holding spaces, dots...; compiling one alternation of every name costs ~0.15 s for
        a thousand services, so the simple ones are looked up run by run)."""
        names = {n for names in self.known.values() for n in names.values()}
        return _word_re({n for n in names if not _RUN_RE.fullmatch(n)})

    def find_names(self, text: str) -> list[str]:
        r"""The inventory names ``text`` mentions as whole words (``-`` counts as a word
        character), as written in the text: what one case-insensitive alternation of every
        name with ``(?<![\w-])…(?![\w-])`` around it would find."""
        found: list[str] = []
        spans: list[tuple[int, int]] = []
        if self.pattern is not None:
            for m in self.pattern.finditer(text):
                found.append(m.group(0))
                spans.append((m.start(), m.end()))
        simple = self._simple
        found += [
            m.group(0)
            for m in _RUN_RE.finditer(text)
            if m.group(0).lower() in simple and not any(a <= m.start() < b for a, b in spans)
        ]
        return found


def _dc_match(wanted: str, have: str) -> bool:
    w, h = re.sub(r"[^A-Za-z0-9]", "", wanted).upper(), re.sub(r"[^A-Za-z0-9]", "", have).upper()
    if not w or not h:
        return False
    if w == h:
        return True
    mw, mh = _DC_RE.match(w), _DC_RE.match(h)
    if not mw or not mh or mw.group(1) != mh.group(1):
        return False
    return not mw.group(2) or not mh.group(2)


_RUN_RE = re.compile(r"[\w-]+")


def _word_re(names: Iterable[str]) -> re.Pattern[str] | None:
    alts = sorted({n for n in names if n.strip()}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(re.escape(n) for n in alts)
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE)


def _ranges(text: str) -> list[str]:
    """``p19-sw-01 to p19-sw-08`` → the eight names (same prefix, same width)."""
    out: list[str] = []
    for m in _RANGE_RE.finditer(text):
        prefix, lo, prefix2, hi = m.group(1), m.group(2), m.group(3), m.group(4)
        if prefix2 and prefix2.casefold() != prefix.casefold():
            continue
        a, b = int(lo), int(hi)
        if b < a or b - a > _MAX_RANGE:
            continue
        width = len(lo) if lo.startswith("0") else 0
        out.extend(f"{prefix}{n:0{width}d}" for n in range(a, b + 1))
    return out


def _expand(scope: Mapping[str, Sequence[str]], aliases: Aliases) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {k: set() for k in SCOPE_KEYS}
    for key in SCOPE_KEYS:
        table = aliases.get(key, {})
        for name in scope.get(key) or ():
            out[key].add(name)
            out[key].update(table.get(_norm(name), ()))
    return out


def resolve_scope(
    scope: Mapping[str, Sequence[str]],
    inventory: Inventory,
    *,
    text: str = "",
    aliases: Aliases | None = None,
) -> tuple[str, ...]:
    """The inventory services ``scope`` (plus names found in ``text``) designates, sorted."""
    aliases = aliases or {}
    wanted = _expand(scope, aliases)
    if text:
        for key, table in aliases.items():
            pattern = _word_re(table)
            if pattern:
                for m in pattern.finditer(text):
                    wanted[key].update(table.get(_norm(m.group(0)), ()))
        known = inventory.known
        found = inventory.find_names(text)
        found += _ranges(text)
        for name in found:
            for col, key in TEXT_COLUMNS.items():
                if _norm(name) in known[col]:
                    wanted[key].add(known[col][_norm(name)])
    index = inventory.index
    hit: set[str] = set()
    for dc in wanted["datacenters"]:
        for dc_have, services in index["datacenter"].items():
            if _dc_match(dc, dc_have):
                hit |= services
    for key, cols in MATCHES.items():
        if key == "datacenters":
            continue
        for name in {_norm(n) for n in wanted[key]}:
            for col in cols:
                hit |= index[col].get(name, set())
    return tuple(sorted(hit))


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _scope_of(value: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    value = value or {}
    return {k: tuple(value.get(k) or ()) for k in SCOPE_KEYS}


def list_changes(
    con: Snapshot,
    *,
    start: datetime,
    end: datetime,
    kind: str | None = None,
    aliases: Aliases | None = None,
) -> list[Change]:
    """Every change (latest version) whose time or window meets [start, end], oldest first.

    A point change meets the range when its start is inside it; a window when
    it overlaps it.  Cancelled changes are included (``status='cancelled'``).
    ``resolved_services`` is filled by :func:`resolve_scope`.
    """
    if kind is not None and kind not in CHANGE_KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(CHANGE_KINDS)}, found {kind!r}")
    if end < start:
        raise ConfigError(f"time range: the end {end.isoformat()} is before the start {start.isoformat()}")
    sql = (
        'SELECT change_id, kind, start, "end", title, description, status, impact, source, url, '
        "author, version, scope FROM changes "
        'WHERE start <= $hi AND coalesce("end", start) >= $lo'
        + (" AND kind = $kind" if kind else "")
        + " ORDER BY start, change_id"
    )
    params: dict[str, Any] = {"lo": start, "hi": end}
    if kind:
        params["kind"] = kind
    got = con.execute(sql, params).fetchall()
    inventory = Inventory.load(con)
    out = []
    for r in got:
        scope = _scope_of(r[12])
        # a notice's components and objects are the provider's names: read like its text, so
        # a component named after a switch, rack or datacenter covers what sits behind it
        text = (
            " \n".join(t for t in (r[4], r[5], *scope["services"], *scope["hosts"]) if t)
            if r[1] in TEXT_KINDS
            else ""
        )
        out.append(
            Change(
                change_id=r[0],
                kind=r[1],
                start=_utc(r[2]),
                end=_utc(r[3]),
                title=r[4],
                description=r[5],
                status=r[6],
                impact=r[7],
                source=r[8],
                url=r[9],
                author=r[10],
                version=r[11],
                scope=scope,
                resolved_services=resolve_scope(scope, inventory, text=text, aliases=aliases),
            )
        )
    return out
