"""Shared fate: the failure domains of the inventory, and the redundancy groups whose members
all sit in one of them.

A **failure domain** is one value of a topology column of the inventory — a datacenter, a
switch, a rack, a host — and holds the services with that value: one fault or one
maintenance there reaches all of them.  For a datacenter the report also counts the services
behind its switches (every service, in any datacenter, whose switch is one of the switches of
that datacenter's services): what a maintenance on all its switches reaches.

A **redundancy group** is the set of services sharing a value of the optional inventory
column ``redundancy_group`` (a primary and its standby, a pair of load balancers).  For each
group the report lists the domains where *all* its members sit together, widest first: one
fault there takes every member down, so the group gives no redundancy against it.  A group
with no such domain is spread.  Services with no value in a column are in no domain of that
level; a warehouse written before the column existed has no groups (the view reads it as
null).

``whatchanged fate [--group G] [--json]`` prints :func:`whatchanged.present.shapes.fate`; the postmortem
(:mod:`whatchanged.engine.postmortem`) uses :func:`smallest_domain` and
:func:`groups_within` for the scope that failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.snapshot import Snapshot

#: failure domains, widest first
LEVELS = ("datacenter", "switch", "rack", "host")


@dataclass(frozen=True)
class Domain:
    """One failure domain and how many services it holds."""

    level: str  # datacenter, switch, rack, host
    name: str
    services: int
    share: float  # services / all services of the inventory
    #: datacenter only: how many switches, racks and hosts its services sit behind or on
    parts: Mapping[str, int]
    #: datacenter only: services behind the switches of its services (any datacenter)
    behind_switches: int | None = None


@dataclass(frozen=True)
class Member:
    service: str
    where: Mapping[str, str | None]  # level → value


@dataclass(frozen=True)
class Group:
    """A redundancy group and the domains every member shares (widest first)."""

    name: str
    members: tuple[Member, ...]
    shared: tuple[Domain, ...]

    @property
    def spread(self) -> bool:
        return not self.shared


@dataclass(frozen=True)
class FateReport:
    services: int
    domains: Mapping[str, tuple[Domain, ...]]  # level → domains, largest first
    groups: tuple[Group, ...]

    @property
    def largest(self) -> Domain | None:
        """The domain holding the most services (the widest level on a tie)."""
        found = [d for level in LEVELS for d in self.domains.get(level, ())]
        return max(found, key=lambda d: (d.services, -LEVELS.index(d.level)), default=None)


@dataclass(frozen=True)
class Inventory:
    """Where every service sits and the group it belongs to."""

    where: Mapping[str, Mapping[str, str | None]]  # service → level → value
    group_of: Mapping[str, str]  # service → redundancy group

    @classmethod
    def load(cls, con: Snapshot) -> Inventory:
        rows = con.execute(
            f"SELECT service, {', '.join(LEVELS)}, redundancy_group FROM services ORDER BY service"
        ).fetchall()
        where = {str(r[0]): dict(zip(LEVELS, r[1:5], strict=True)) for r in rows}
        groups = {str(r[0]): str(r[5]) for r in rows if r[5]}
        return cls(where, groups)

    def members(self, level: str, name: str) -> set[str]:
        return {s for s, w in self.where.items() if w.get(level) == name}


def _domains(inv: Inventory) -> dict[str, tuple[Domain, ...]]:
    total = len(inv.where)
    out: dict[str, tuple[Domain, ...]] = {}
    for level in LEVELS:
        counts: dict[str, int] = {}
        for w in inv.where.values():
            value = w.get(level)
            if value:
                counts[value] = counts.get(value, 0) + 1
        found = []
        for name, n in counts.items():
            parts: dict[str, int] = {}
            behind: int | None = None
            if level == "datacenter":
                inside = [w for w in inv.where.values() if w.get("datacenter") == name]
                for part in LEVELS[1:]:
                    parts[part] = len({w[part] for w in inside if w.get(part)})
                switches = {w["switch"] for w in inside if w.get("switch")}
                behind = sum(1 for w in inv.where.values() if w.get("switch") in switches)
            found.append(Domain(level, name, n, n / total if total else 0.0, parts, behind))
        out[level] = tuple(sorted(found, key=lambda d: (-d.services, d.name)))
    return out


def _shared(
    members: Iterable[str], inv: Inventory, domains: Mapping[str, tuple[Domain, ...]]
) -> tuple[Domain, ...]:
    names = list(members)
    shared: list[Domain] = []
    for level in LEVELS:
        values = {inv.where[m].get(level) for m in names}
        if len(values) == 1 and None not in values:
            (value,) = values
            shared.extend(d for d in domains[level] if d.name == value)
    return tuple(shared)


def fate_report(con: Snapshot, *, group: str | None = None) -> FateReport:
    """The failure domains and every redundancy group (or only ``group``: NotFoundError if the
    inventory has no such group)."""
    inv = Inventory.load(con)
    domains = _domains(inv)
    by_group: dict[str, list[str]] = {}
    for service, name in sorted(inv.group_of.items()):
        by_group.setdefault(name, []).append(service)
    if group is not None and group not in by_group:
        known = ", ".join(sorted(by_group)) or "none: the inventory has no redundancy_group column values"
        raise NotFoundError(f"redundancy group {group!r}: not in the inventory (groups: {known})")
    groups = tuple(
        Group(
            name,
            tuple(Member(m, dict(inv.where[m])) for m in members),
            _shared(members, inv, domains),
        )
        for name, members in sorted(by_group.items())
        if group is None or name == group
    )
    return FateReport(len(inv.where), domains, groups)


def smallest_domain(con_or_inv: Snapshot | Inventory, services: Iterable[str]) -> Domain | None:
    """The narrowest domain (host, then rack, switch, datacenter) holding every one of
    ``services``; None when they span datacenters (or the inventory does not place them)."""
    inv = con_or_inv if isinstance(con_or_inv, Inventory) else Inventory.load(con_or_inv)
    names = [s for s in services if s in inv.where]
    if not names:
        return None
    domains = _domains(inv)
    for level in reversed(LEVELS):
        values = {inv.where[s].get(level) for s in names}
        if len(values) == 1 and None not in values:
            (value,) = values
            return next((d for d in domains[level] if d.name == value), None)
    return None


def groups_within(inv: Inventory, scope: Iterable[str]) -> list[Group]:
    """The redundancy groups (of at least two services) all of whose members are in ``scope``:
    the failure of that scope took the whole group down."""
    inside = set(scope)
    by_group: dict[str, list[str]] = {}
    for service, name in sorted(inv.group_of.items()):
        by_group.setdefault(name, []).append(service)
    domains = _domains(inv)
    return [
        Group(name, tuple(Member(m, dict(inv.where[m])) for m in members), _shared(members, inv, domains))
        for name, members in sorted(by_group.items())
        if len(members) >= 2 and set(members) <= inside
    ]
