"""Where heavy work runs: in this process, on a local Dask cluster, or on any Dask scheduler.

``--scheduler`` (and ``LATENTSKY_SCHEDULER`` for the job worker) is parsed once into a
:class:`SchedulerSpec`:

- ``sync``: everything in the calling process, one partition after the other (no Dask);
- ``local`` / ``local:N``: a ``dask.distributed.LocalCluster`` of N single-threaded worker
  processes (default: one per core this process may use), started for the command and shut
  down after it;
- ``tcp://HOST:PORT``: a running Dask scheduler (``dask scheduler``, dask-jobqueue, Kubernetes;
  see ``docs/deployment.md``). Its workers must see the same data root (``LATENTSKY_HOME``,
  ``DATABASE_URL``) as the client.

:func:`executor` yields an :class:`Executor`. Its :meth:`Executor.map` runs a picklable
function over partitions and returns the results in the order of the items, with a progress
bar; a task whose worker dies is moved to another worker by the scheduler (up to Dask's
``distributed.scheduler.allowed-failures``), and a task that raises is retried
:data:`RETRIES` times before the error reaches the caller, unless the error is a user's
(:class:`~backend.errors.UserError`: bad input, the same on every try), which is carried back
as the task's result and raised at once, with its one-line message. :meth:`Executor.submit_graph` runs
named steps in dependency order: the steps themselves are coordinated by the client (Dask's
threaded scheduler, so independent steps overlap), and each step fans its partitions out with
:meth:`Executor.map`. Opening an executor while one is open reuses it (same spec, or no spec),
so a step of a graph never starts a second cluster.

GPU tasks: when ``LATENTSKY_DASK_GPU=1`` the workers are taken to have GPUs (``dask worker
--resources GPU=1``; a local cluster is started with that resource), and model tasks request
``{"GPU": 1}`` (:func:`model_resources`), so only GPU workers take them. Without it no resource
is requested and any worker runs any task.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from backend import config
from backend.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

#: Times a task that raised is run again before its error reaches the caller.
RETRIES = 2
#: Partitions in flight or held on the client at once: this many per worker, at least MIN_WINDOW.
WINDOW_PER_WORKER, MIN_WINDOW = 4, 16
#: Set in a local cluster's worker processes before they start (with Dask's own
#: ``distributed.nanny.pre-spawn-environ``): one malloc arena. Without it the task thread of a
#: worker may get a thread arena whose freed pages go back to the OS, and every batch's
#: activations fault in fresh pages (48,000 cutouts: 1.8 M page faults against 13 k, +17% CPU).
WORKER_ENVIRON = {"MALLOC_ARENA_MAX": "1"}
#: Dask settings of a local cluster's workers: no statistical profiler. It samples the task
#: thread's stack every 10 ms for the dashboard's profile page, which local clusters do not
#: serve: an idle worker spent 0.027 CPU-s per second with it, 0.018 without; on a whole
#: embedding the difference was within the shared machine's noise (one worker, 12,000 cutouts:
#: +10% / +5.5% CPU against the plain path in one paired run, +4.0% / +4.5% in another).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
#: Seconds to wait for a ``tcp://`` scheduler to answer.
CONNECT_TIMEOUT_S = 10
OPTION = "--scheduler"
_TCP = re.compile(r"^tcp://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(?P<port>\d{1,5})$")


class SchedulerError(UserError, ValueError):
    """A ``--scheduler`` / ``LATENTSKY_SCHEDULER`` value that is not usable."""


@dataclass(frozen=True)
class SchedulerSpec:
    """Where heavy work runs: ``sync``, ``local`` (``workers`` processes) or ``tcp`` (``address``)."""

    kind: Literal["sync", "local", "tcp"]
    workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return f"local:{self.workers}" if self.workers else "local"
        return self.address if self.kind == "tcp" else "sync"


def machine_workers() -> int:
    """Worker processes of a default local cluster: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def parse_scheduler(text: str | None) -> SchedulerSpec:
    """``sync`` | ``local`` | ``local:N`` | ``tcp://HOST:PORT``; None → ``LATENTSKY_SCHEDULER``,
    else a local cluster sized to the machine. Bad text → :class:`SchedulerError`."""
    source = OPTION
    if text is None:
        text = config.scheduler_text()
        source = config.SCHEDULER_ENV
        if text is None:
            return SchedulerSpec("local", workers=machine_workers())
    value = text.strip()
    low = value.lower()
    if low == "sync":
        return SchedulerSpec("sync")
    if low == "local":
        return SchedulerSpec("local", workers=machine_workers())
    if low.startswith("local:"):
        count = value[len("local:") :]
        if count.isdigit() and 1 <= int(count) <= 1024:
            return SchedulerSpec("local", workers=int(count))
        raise SchedulerError(
            f"{source} {text!r}: local:N needs a number of worker processes from 1 to 1024"
        )
    match = _TCP.match(value)
    if match and 0 < int(match["port"]) < 65536:
        return SchedulerSpec("tcp", address=value)
    raise SchedulerError(
        f"{source} {text!r}: give sync, local, local:N (N worker processes) or "
        "tcp://HOST:PORT (a running Dask scheduler)"
    )


def model_resources() -> dict[str, float] | None:
    """The Dask resources a model (torch) task requests: ``{"GPU": 1}`` when the workers have
    GPUs (``LATENTSKY_DASK_GPU=1``), else None (any worker)."""
    return {"GPU": 1.0} if config.dask_gpu_workers() else None


def partitions(n: int, rows: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` row ranges of at most ``rows`` rows covering ``0..n`` (fixed by ``n`` and
    ``rows`` only, so results do not depend on how many workers run them)."""
    rows = max(1, int(rows))
    return [(lo, min(n, lo + rows)) for lo in range(0, n, rows)]


def even_partitions(n: int, rows: int) -> list[tuple[int, int]]:
    """As many ranges as :func:`partitions` makes, of equal sizes (differing by one row at
    most): with ``k`` workers no worker is left with a full partition while another ends on a
    short one (48,000 rows in 8,192-row parts: 6 of 8,000, not 5 of 8,192 and one of 7,040)."""
    count = -(-n // max(1, int(rows))) if n > 0 else 0
    bounds = [n * i // count for i in range(count + 1)] if count else []
    return list(itertools.pairwise(bounds))


class Executor:
    """Runs partitions in this process (``client`` None) or on a Dask cluster."""

    def __init__(
        self,
        spec: SchedulerSpec,
        client: Any | None = None,
        start: Callable[[], Any] | None = None,
    ) -> None:
        self.spec = spec
        self.client = client
        self._start = start  # makes the client on first use (a local cluster)
        self._start_lock = threading.Lock()

    @property
    def workers(self) -> int:
        """Workers attached (1 in-process; a local cluster's size before it is started)."""
        if self.client is None:
            return (self.spec.workers or 1) if self._start is not None else 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def _client(self, items: int) -> Any | None:
        """The Dask client for ``items`` tasks. A local cluster is started the first time there
        are two or more tasks; one task (a small survey) runs in this process, as it would on a
        local worker, without paying for a cluster."""
        if self.client is None and self._start is not None and items >= 2:
            with self._start_lock:
                if self.client is None:
                    self.client = self._start()
        return self.client

    def imap(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        resources: dict[str, float] | None = None,
        desc: str | None = None,
    ) -> Iterator[R]:
        """``fn(item)`` for each item, yielded in the order of ``items`` as soon as each one and
        all before it are done (results that arrive early wait on the client)."""
        from tqdm.auto import tqdm

        items = list(items)
        bar = tqdm(total=len(items), desc=desc, unit="part", disable=desc is None or not items)
        try:
            if self._client(len(items)) is None:
                for item in items:
                    result = fn(item)
                    bar.update(1)
                    yield result
                return
            yield from self._imap_dask(fn, items, resources, desc, bar)
        finally:
            bar.close()

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        resources: dict[str, float] | None = None,
        desc: str | None = None,
    ) -> list[R]:
        """``[fn(item) for item in items]``, run where this executor runs things."""
        return list(self.imap(fn, items, resources=resources, desc=desc))

    def _imap_dask(
        self,
        fn: Callable[[T], R],
        items: list[T],
        resources: dict[str, float] | None,
        desc: str | None,
        bar: Any,
    ) -> Iterator[R]:
        from distributed import as_completed

        if not items:
            return
        resources = self._usable_resources(resources)
        label = desc or getattr(fn, "__name__", type(fn).__name__)
        name = re.sub(r"[^A-Za-z0-9_]+", "_", label) or "task"
        token = uuid.uuid4().hex[:8]
        keys = [f"{name}-{token}-{i}" for i in range(len(items))]
        # the task function (a model version, a fitted forest, landmarks...) goes to every
        # worker once, not once per task; a worker that dies takes no only copy with it
        shared = self.client.scatter(fn, broadcast=True, hash=False)
        # at most `window` partitions in flight or waiting for an earlier one on the client, so
        # a slow or re-run partition never makes the client hold a whole survey's results
        window = max(MIN_WINDOW, WINDOW_PER_WORKER * self.workers)
        todo = iter(range(len(items)))
        live: dict[int, Any] = {}
        done: dict[int, Any] = {}
        following = 0
        completed = as_completed()

        def submit_more() -> None:
            while len(live) + len(done) < window:
                i = next(todo, None)
                if i is None:
                    return
                live[i] = self.client.submit(
                    _apply, shared, items[i], key=keys[i], pure=False, retries=RETRIES,
                    resources=resources,
                )  # fmt: skip
                completed.add(live[i])

        index = {key: i for i, key in enumerate(keys)}
        try:
            submit_more()
            for future in completed:
                i = index[future.key]
                done[i] = future.result()
                if isinstance(done[i], _UserFailure):
                    raise done[i].error
                del live[i]  # releases the result on the worker
                bar.update(1)
                while following in done:
                    yield done.pop(following)
                    following += 1
                submit_more()
        finally:
            if live:
                self.client.cancel(list(live.values()))

    def _usable_resources(self, resources: dict[str, float] | None) -> dict[str, float] | None:
        """``resources`` unless attached workers exist and none has them (which would wait
        forever): then a :class:`SchedulerError` says how to start such workers."""
        if not resources:
            return None
        workers = self.client.scheduler_info().get("workers", {})
        if workers and not any(
            all(w.get("resources", {}).get(k, 0) >= v for k, v in resources.items())
            for w in workers.values()
        ):
            wanted = ",".join(f"{k}={v:g}" for k, v in resources.items())
            raise SchedulerError(
                f"{OPTION} {self.spec}: tasks request the Dask resources {wanted} "
                f"({config.DASK_GPU_ENV}=1) but no worker has them: start workers with "
                f"'dask worker ... --resources {wanted}' or unset {config.DASK_GPU_ENV}"
            )
        return resources

    def submit_graph(
        self, steps: Mapping[str, tuple[Callable[[], Any], Sequence[str]]]
    ) -> dict[str, Any]:
        """Run named steps ``name -> (fn, names it depends on)`` in dependency order (a step
        starts once its dependencies are done; independent steps overlap on a cluster);
        ``{name: fn()}``. Unknown dependencies and cycles → ``ValueError`` before anything runs."""
        import dask

        order = _topological(steps)
        nodes: dict[str, Any] = {}
        for name in order:
            fn, deps = steps[name]
            nodes[name] = dask.delayed(_run_step, pure=False)(
                fn, *[nodes[d] for d in deps], dask_key_name=f"step-{name}"
            )
        if not order:
            return {}
        if self.spec.kind == "sync":
            values = dask.compute(*[nodes[n] for n in order], scheduler="sync")
        else:  # a thread per step: a step coordinates partitions run on the workers, so every
            # ready step starts (the map, index and scores of a big survey overlap, and what a
            # step computes here, UMAP or a k-means, runs beside the others' partitions)
            values = dask.compute(
                *[nodes[n] for n in order], scheduler="threads", num_workers=len(order)
            )
        return dict(zip(order, values, strict=True))


class _UserFailure:
    """A :class:`~backend.errors.UserError` a task raised, returned as its result so that Dask
    does not run the task again (retries are for lost workers and other accidents)."""

    def __init__(self, error: UserError) -> None:
        try:  # an error class whose constructor takes other arguments does not unpickle
            pickle.loads(pickle.dumps(error))
        except Exception:
            error = UserError(str(error))
        self.error = error


def _apply(fn: Callable[[T], R], item: T) -> R | _UserFailure:
    try:
        return fn(item)
    except UserError as exc:
        return _UserFailure(exc)


def _run_step(fn: Callable[[], Any], *_deps: Any) -> Any:
    return fn()


def _topological(steps: Mapping[str, tuple[Callable[[], Any], Sequence[str]]]) -> list[str]:
    """Step names with every step after its dependencies (input order kept where free)."""
    for name, (_, deps) in steps.items():
        unknown = [d for d in deps if d not in steps]
        if unknown:
            raise ValueError(f"step {name!r} depends on unknown steps {unknown}")
    order: list[str] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"steps form a cycle: {' -> '.join([*path, name])}")
        state[name] = 1
        for dep in steps[name][1]:
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in steps:
        visit(name, [])
    return order


_ACTIVE: list[Executor] = []
_ACTIVE_LOCK = threading.Lock()


def _reusable(spec: SchedulerSpec | str | None) -> Executor | None:
    with _ACTIVE_LOCK:
        if not _ACTIVE:
            return None
        if spec is None:
            return _ACTIVE[-1]
        parsed = parse_scheduler(spec) if isinstance(spec, str) else spec
        return next((e for e in reversed(_ACTIVE) if e.spec == parsed), None)


@contextmanager
def executor(spec: SchedulerSpec | str | Executor | None) -> Iterator[Executor]:
    """An :class:`Executor` for ``spec`` (parsed with :func:`parse_scheduler` when text or
    None), closed on exit; an open executor with the same spec (any, for None) is reused."""
    if isinstance(spec, Executor):
        yield spec
        return
    reused = _reusable(spec)
    if reused is not None:
        yield reused
        return
    parsed = spec if isinstance(spec, SchedulerSpec) else parse_scheduler(spec)
    with _open(parsed) as ex:
        with _ACTIVE_LOCK:
            _ACTIVE.append(ex)
        try:
            yield ex
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.remove(ex)


@contextmanager
def _open(spec: SchedulerSpec) -> Iterator[Executor]:
    if spec.kind == "sync":
        yield Executor(spec)
        return
    from distributed import Client

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # -v shows it
        # distributed sets its loggers to INFO when imported; a local cluster's scheduler runs
        # in this process, and its start/stop chatter is not news to a user
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if spec.kind == "local":
        opened: list[Any] = []

        def start() -> Any:
            import dask

            environ = {
                **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                **WORKER_ENVIRON,
            }
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **WORKER_CONFIG}):
                cluster = _local_cluster(spec)  # its nannies hand this config to the workers
            opened.append(cluster)
            client = Client(cluster)
            opened.append(client)
            return client

        try:
            yield Executor(spec, start=start)
        finally:
            for thing in reversed(opened):
                thing.close()
        return
    try:
        client = Client(spec.address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as exc:
        raise SchedulerError(
            f"{OPTION} {spec.address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
            f"({exc.__class__.__name__})"
        ) from None
    try:
        yield Executor(spec, client)
    finally:
        client.close()


def _local_cluster(spec: SchedulerSpec) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes for a ``local`` spec."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=spec.workers or machine_workers(),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,  # no dashboard; its HTTP server (health) on any port:
        scheduler_kwargs={"dashboard_address": ":0"},
        silence_logs=logging.ERROR,
        resources={"GPU": 1} if config.dask_gpu_workers() else None,
    )
