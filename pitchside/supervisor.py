"""Supervise the processes of one machine: start, restart with a budget, stop in order.

After frigate's ``frigate/watchdog.py``: a crashed child is restarted after an exponential
backoff (0.5 s, doubling, at most 10 s), at most ``budget`` times in ``window_s``; past that
the supervisor gives up on that child and logs an error. A child that exits 0 is done; one
that exits 2 has a configuration or model error that no restart can fix: it is not
restarted. When a ``required`` child is given up on or cannot run, the supervisor reports it
on :attr:`Supervisor.failed`, so that its owner stops everything rather than run half a stack.

Children never outlive the supervisor: each gets ``PR_SET_PDEATHSIG`` (SIGTERM when the thread
that started it dies, even by SIGKILL), runs in its own process group so that a terminal's
Ctrl-C reaches only the parent, and :meth:`Supervisor.stop` stops them in reverse start order:
SIGTERM, then SIGKILL to the child's process group at its ``stop_timeout_s`` deadline.

Start children from the event loop of the main thread: the death signal is tied to the
thread that forked the child, so a child forked from a short-lived thread would die with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import enum
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pitchside.errors import ExitCode

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_TAIL_BYTES = 4096  # stderr kept per child, to quote its last words
_KILL_WAIT_S = 5.0  # after SIGKILL, how long to wait for the kernel to reap the child


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies.

    Everything is looked up here, in the parent, so the child only makes one system call
    between fork and exec. If the parent died before the call took effect, the child ends
    itself at once. Returns None where ``prctl`` does not exist (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os.kill(os.getpid(), sig)

    return preexec


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One process to supervise.

    Attributes:
        name: unique name used in logs (``gateway``, ``worker-1``).
        argv: the command, e.g. ``(sys.executable, "-m", "gateway")``.
        env: the child's whole environment; None inherits the parent's.
        required: when True, an exit with status 2, or being given up on, sets
            :attr:`Supervisor.failed`.
        stop_timeout_s: time between SIGTERM and SIGKILL when stopping.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    required: bool = True
    stop_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to restart a crashed child (frigate's watchdog budget, with backoff)."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    budget: int = 5  # restarts allowed within window_s; one more crash gives up on the child
    window_s: float = 60.0

    def delay(self, recent_restarts: int) -> float:
        """Backoff before the next restart, given the restarts already made in the window."""
        return min(self.backoff_initial_s * 2.0**recent_restarts, self.backoff_max_s)


class ChildState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed, waiting to be restarted
    EXITED = "exited"  # exited 0: done, not restarted
    FAILED = "failed"  # exited 2: configuration or model error, not restarted
    GAVE_UP = "gave_up"  # crashed more often than the restart budget allows
    STOPPED = "stopped"  # stopped by Supervisor.stop


_FINAL = (ChildState.EXITED, ChildState.FAILED, ChildState.GAVE_UP)


@dataclass(frozen=True, slots=True)
class ChildFailure:
    """A required child that cannot run (exit status 2) or was given up on (it crashed more
    often than the budget allows), and the last thing it wrote to stderr."""

    name: str
    returncode: int
    message: str
    state: ChildState = ChildState.FAILED  # or GAVE_UP

    def describe(self) -> str:
        """One line: what happened to the child, and its last words."""
        words = self.message or "no message"
        if self.state is ChildState.GAVE_UP:
            return f"{self.name} kept crashing ({_describe(self.returncode)}); gave up: {words}"
        return f"{self.name} cannot run (exit status {self.returncode}): {words}"


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    state: ChildState = ChildState.STARTING
    proc: asyncio.subprocess.Process | None = None
    runs: int = 0  # processes started
    returncode: int | None = None  # of the last process that exited
    delays: list[float] = field(default_factory=list)  # every backoff applied, in order
    restarts: collections.deque[float] = field(default_factory=collections.deque)
    tail: bytearray = field(default_factory=bytearray)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # spawn vs. stop
    watcher: asyncio.Task[None] | None = None
    reader: asyncio.Task[None] | None = None

    def last_words(self) -> str:
        lines = [ln.strip() for ln in self.tail.decode(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else ""


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """A read-only view of one child, for logs, tests and health endpoints."""

    name: str
    state: ChildState
    pid: int | None
    runs: int
    returncode: int | None
    delays: tuple[float, ...]


class Supervisor:
    """Run a set of child processes until :meth:`stop`.

    Usage::

        sup = Supervisor([ChildSpec("gateway", [sys.executable, "-m", "gateway"])])
        await sup.start()
        try:
            await asyncio.wait({...stop.wait(), sup.failed.wait()}, ...)
        finally:
            await sup.stop()

    Args:
        specs: children in start order; names must be unique.
        policy: restart backoff and budget.
        stderr: where children's stderr lines are forwarded (default: this process's).
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        policy: RestartPolicy | None = None,
        stderr: Callable[[bytes], None] | None = None,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        self._children = [_Child(spec) for spec in specs]
        self._policy = policy or RestartPolicy()
        self._forward: Callable[[bytes], None] | None = stderr or _write_stderr
        self._stopping = asyncio.Event()
        self.failed = asyncio.Event()  #: set when a required child cannot run or is given up
        self.failure: ChildFailure | None = None
        self.done = asyncio.Event()  #: set when no child runs or will be restarted

    def status(self) -> list[ChildStatus]:
        """Every child's state, in start order."""
        return [
            ChildStatus(
                name=c.spec.name,
                state=c.state,
                pid=c.proc.pid if c.proc and c.proc.returncode is None else None,
                runs=c.runs,
                returncode=c.returncode,
                delays=tuple(c.delays),
            )
            for c in self._children
        ]

    def child(self, name: str) -> ChildStatus:
        """The status of the child called ``name``."""
        for status in self.status():
            if status.name == name:
                return status
        raise KeyError(name)

    async def wait_finished(self, name: str) -> ChildStatus:
        """Wait until the child ``name`` will not run again (exited, failed, gave up, stopped).

        Unbounded: wrap it in ``asyncio.wait_for``.
        """
        await self._get(name).finished.wait()
        return self.child(name)

    async def start(self) -> None:
        """Start every child in order, each watched by its own task.

        Raises:
            OSError: a command could not be executed (the children already started keep
                running: call :meth:`stop`).
        """
        for child in self._children:
            if self._stopping.is_set():
                return
            await self._spawn(child)
            child.watcher = asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}")

    async def stop(self) -> None:
        """Stop every child in reverse start order and wait for them all.

        Each child gets SIGTERM, then SIGKILL (to its whole process group) when it is still
        running ``stop_timeout_s`` later. Safe to call more than once and during :meth:`start`.
        """
        self._stopping.set()
        for child in reversed(self._children):
            await self._stop_child(child)
        tasks = [t for c in self._children for t in (c.watcher, c.reader) if t is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_KILL_WAIT_S)
            for task in pending:  # only a grandchild holding a pipe open can cause this
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for child in self._children:
            if child.state not in _FINAL:
                child.state = ChildState.STOPPED
            child.finished.set()
        self.done.set()

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------------------------------

    def _get(self, name: str) -> _Child:
        for child in self._children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        async with child.lock:
            if self._stopping.is_set():
                return
            child.state = ChildState.STARTING
            child.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env) if spec.env is not None else None,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                process_group=0,  # a terminal's Ctrl-C goes to the parent only
                preexec_fn=die_with_parent(),
            )
            child.runs += 1
            child.state = ChildState.RUNNING
            child.tail.clear()
            child.reader = asyncio.create_task(self._read_stderr(child, child.proc))
        log.info("started %s (pid %d)", spec.name, child.proc.pid)

    async def _read_stderr(self, child: _Child, proc: asyncio.subprocess.Process) -> None:
        """Forward the child's stderr line by line and keep its tail.

        The pipe is drained until the child closes it, even when forwarding fails (a closed
        terminal or pipe): a child blocked on a full pipe could not stop.
        """
        if proc.stderr is None:
            return
        pending = b""
        while chunk := await proc.stderr.read(65536):
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) < 65536:
                continue
            cut = cut or len(pending)
            self._emit(child, pending[:cut])
            pending = pending[cut:]
        if pending:
            self._emit(child, pending + b"\n")

    def _emit(self, child: _Child, data: bytes) -> None:
        child.tail += data
        del child.tail[:-_TAIL_BYTES]
        if self._forward is None:
            return
        try:
            self._forward(data)
        except (OSError, ValueError):  # our stderr is gone (EPIPE) or closed: keep draining
            self._forward = None

    async def _watch(self, child: _Child) -> None:
        name = child.spec.name
        policy = self._policy
        while True:
            proc = child.proc
            if proc is None:  # stop() came before the spawn
                break
            code = await proc.wait()
            if child.reader is not None:
                await _bounded(child.reader, 5.0)
            child.returncode = code
            if self._stopping.is_set():
                break
            if code == ExitCode.OK:
                log.info("%s exited cleanly; not restarted", name)
                child.state = ChildState.EXITED
                break
            if code == ExitCode.USAGE:
                message = child.last_words()
                log.error("%s cannot run (exit status 2), not restarted: %s", name, message)
                child.state = ChildState.FAILED
                self._report(child, code)
                break
            now = time.monotonic()
            while child.restarts and now - child.restarts[0] > policy.window_s:
                child.restarts.popleft()
            if len(child.restarts) >= policy.budget:
                log.error(
                    "%s crashed (%s) after %d restarts in %.0f s; giving up on it",
                    name, _describe(code), len(child.restarts), policy.window_s,
                )  # fmt: skip
                child.state = ChildState.GAVE_UP
                self._report(child, code)
                break
            delay = policy.delay(len(child.restarts))
            child.delays.append(delay)
            child.restarts.append(now)
            child.state = ChildState.BACKOFF
            log.warning(
                "%s crashed (%s); restart %d of %d in %.1f s",
                name, _describe(code), len(child.restarts), policy.budget, delay,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                break
            try:
                await self._spawn(child)
            except OSError as exc:
                log.error("%s could not be restarted: %s; giving up on it", name, exc)
                child.state = ChildState.GAVE_UP
                self._report(child, code)
                break
        if child.state not in _FINAL:
            child.state = ChildState.STOPPED
        child.finished.set()
        if all(c.finished.is_set() for c in self._children):
            self.done.set()

    def _report(self, child: _Child, code: int) -> None:
        """A required child will not run again: say so on :attr:`failed` (the first only)."""
        if child.spec.required and self.failure is None:
            self.failure = ChildFailure(child.spec.name, code, child.last_words(), child.state)
            self.failed.set()

    async def _stop_child(self, child: _Child) -> None:
        async with child.lock:  # waits for a spawn in progress, so it cannot escape
            proc = child.proc
            if proc is None or proc.returncode is not None:
                return
            name, timeout_s = child.spec.name, child.spec.stop_timeout_s
            log.info("stopping %s (pid %d)", name, proc.pid)
            _signal_group(proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("%s did not stop within %.1f s; killing it", name, timeout_s)
                _signal_group(proc, signal.SIGKILL)
                try:
                    await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)
                except TimeoutError:
                    log.error("%s (pid %d) survived SIGKILL", name, proc.pid)
            child.state = ChildState.STOPPED


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the child's process group (the child leads it), so helpers it started go too."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # it exited between the check and the signal: nothing left to stop
    except PermissionError:
        proc.send_signal(sig)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


async def _bounded(task: asyncio.Task[None], timeout_s: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.cancel()  # a grandchild holds the pipe open: stop forwarding, do not hang


def _write_stderr(data: bytes) -> None:
    sys.stderr.flush()
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:  # a text-only stream (some test harnesses)
        sys.stderr.write(data.decode(errors="replace"))
        sys.stderr.flush()
        return
    buffer.write(data)
    buffer.flush()
