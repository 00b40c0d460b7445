"""One reading of the warehouse: what every engine function is handed.

A :class:`Snapshot` is opened once per command or request (think datasette's
``Database``).  It holds

* the DuckDB connection (or cursor) whose views list the committed files;
* the committed files of each table, as listed when the views were made, and the
  warehouse folder they live in (:attr:`Snapshot.home`);
* the data versions: :attr:`Snapshot.version` changes with every commit,
  :meth:`Snapshot.data_version` only when the files of the named tables change
  (incidents depend on services, metrics and states, not on deploys or feedback) —
  both from one function, :func:`fingerprint`;
* nothing else: caches of results live with their owners (incidents, day states, the
  API's memo) and are keyed by the snapshot's data versions.

The engine reads the file list from here instead of parsing the views' SQL, and
finds ``<home>/_cache`` here instead of guessing it from a file's path.

A snapshot forwards ``sql``, ``execute``, ``register`` and ``unregister`` to its
connection, so SQL reads the same whether a function holds a snapshot or the
connection itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

#: tables incident detection reads; a commit of changes or feedback leaves incidents as they were
#: (dependencies: with no detected incident, explain still names a suspected origin from the
#: call graph)
DETECTION_TABLES = ("services", "metrics", "states", "dependencies")


def fingerprint(parts: Iterable[str]) -> str:
    """The one digest of the project's data versions: of a list of names, in order."""
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:20]


class Snapshot:
    """The connection, files, folder and data versions of one reading of a warehouse."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        home: Path,
        manifests: Sequence[Mapping[str, Any]],
        files: Mapping[str, Sequence[str]],
    ) -> None:
        self.con = con
        self.home = home
        self.manifests: tuple[Mapping[str, Any], ...] = tuple(manifests)
        self._files = {t: tuple(fs) for t, fs in files.items()}
        self._versions: dict[tuple[str, ...], str] = {}

    # -- what is committed ----------------------------------------------------------------
    def files(self, table: str) -> list[str]:
        """The committed files (absolute paths) behind ``table``'s view, in commit order."""
        return list(self._files.get(table, ()))

    @property
    def version(self) -> str:
        """Changes with every commit (any table)."""
        from whatchanged.engine.store import TABLES

        return self.data_version(TABLES)

    @property
    def latest_commit(self) -> str:
        """The txid of the latest commit ('' before any): txids sort in commit order."""
        return max((str(m.get("txid", "")) for m in self.manifests), default="")

    def data_version(self, tables: Sequence[str] = DETECTION_TABLES) -> str:
        """Changes only when the committed files of ``tables`` change."""
        key = tuple(tables)
        found = self._versions.get(key)
        if found is None:
            home = str(self.home) + os.sep
            names = [f"{t}\x01{f.removeprefix(home)}" for t in sorted(key) for f in self._files.get(t, ())]
            found = self._versions[key] = fingerprint(names)
        return found

    @property
    def cache_dir(self) -> Path | None:
        """``<home>/_cache`` when the warehouse folder is writable, else None (caches in memory)."""
        if not os.access(self.home, os.W_OK):
            return None
        return self.home / "_cache"

    # -- the connection ---------------------------------------------------------------------
    def sql(self, query: str, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        return self.con.sql(query, *args, **kwargs)

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(query, parameters)

    def register(self, name: str, data: object) -> duckdb.DuckDBPyConnection:
        return self.con.register(name, data)

    def unregister(self, name: str) -> duckdb.DuckDBPyConnection:
        return self.con.unregister(name)

    def cursor(self) -> Snapshot:
        """The same reading on a new cursor (for another thread); shares the data versions."""
        return self.over(self.con.cursor())

    def over(self, con: duckdb.DuckDBPyConnection) -> Snapshot:
        """This reading (files, versions) on ``con``, a cursor of the same database."""
        other = Snapshot(con, home=self.home, manifests=self.manifests, files=self._files)
        other._versions = self._versions
        other.con.execute("SET TimeZone='UTC'")
        return other

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
