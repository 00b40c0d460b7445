"""Where a batch run's partitions run: in this process, on a local process pool, or on Dask.

Each executor yields ``(partition, events)`` as partitions finish, in any order; the workers
call :func:`~whatchanged.engine.batch_partition.run_partition`, which opens its own connection.
Dask is imported lazily, only by :class:`DaskExecutor`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol

import pyarrow as pa

from whatchanged.engine.batch_partition import Partition, run_partition
from whatchanged.engine.errors import ConfigError


class Executor(Protocol):
    """Runs partitions; yields ``(partition, events)`` as each one finishes (any order)."""

    name: str

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]: ...


class InProcessExecutor:
    """One partition after another in this process (the default)."""

    name = "in-process"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        for part in parts:
            yield part, run_partition(home, part)


class PoolExecutor:
    """A local pool of ``workers`` processes (``concurrent.futures``, spawned)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError(f"batch: --workers: expected 1 or more, found {workers}")
        self.workers = workers
        self.name = f"process pool ({workers} workers)"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding DuckDB threads
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_partition, home, p, threads): p for p in parts}
            try:
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


class DaskExecutor:
    """A Dask cluster: ``tcp://host:8786`` (an existing scheduler) or ``local:N`` (a
    ``LocalCluster`` of N single-threaded worker processes on 127.0.0.1).

    Workers must see the warehouse at the same path and have whatchanged
    installed; tasks are retried on other workers when one dies.
    """

    def __init__(self, address: str, *, retries: int = 2) -> None:
        self.address = address
        self.retries = retries
        self.local_workers: int | None = None
        if address.startswith("local:"):
            try:
                self.local_workers = int(address.removeprefix("local:"))
            except ValueError:
                self.local_workers = 0
            if self.local_workers < 1:
                raise ConfigError(f"batch: --scheduler: expected local:N with N ≥ 1, found {address!r}")
        elif not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise ConfigError(f"batch: --scheduler: expected tcp://host:port or local:N, found {address!r}")
        self.name = f"dask ({address})"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        try:
            from dask.distributed import Client, LocalCluster
            from dask.distributed import as_completed as dask_completed
        except ImportError:  # pragma: no cover - the dask extra is missing
            raise ConfigError("batch: --scheduler needs Dask: pip install 'whatchanged[dask]'") from None
        cluster = None
        try:
            if self.local_workers is not None:
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self.local_workers,
                    processes=True,
                    threads_per_worker=1,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                client = Client(cluster)  # type: ignore[no-untyped-call]
            else:
                try:
                    client = Client(self.address, timeout="20s")  # type: ignore[no-untyped-call]
                except OSError as exc:
                    raise ConfigError(
                        f"batch: cannot reach the Dask scheduler at {self.address}: {exc}"
                    ) from None
            with client:
                by_key = {f"whatchanged-batch-{p.key}-{secrets.token_hex(4)}": p for p in parts}
                futures = [
                    client.submit(run_partition, home, p, 1, key=k, pure=False, retries=self.retries)
                    for k, p in by_key.items()
                ]
                try:
                    for fut in dask_completed(futures):  # type: ignore[no-untyped-call]
                        yield by_key[fut.key], fut.result()
                finally:
                    client.cancel(futures)  # type: ignore[no-untyped-call]
        finally:
            if cluster is not None:
                cluster.close()


def executor_for(*, scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor the CLI options name (in-process when neither is given)."""
    if scheduler and workers:
        raise ConfigError("batch: give either --scheduler or --workers, not both")
    if scheduler:
        return DaskExecutor(scheduler)
    if workers:
        return PoolExecutor(workers)
    return InProcessExecutor()
