"""The supervisor with real child processes: small ``python -c`` scripts and real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pitchside.supervisor import ChildSpec, ChildState, RestartPolicy, Supervisor

WAIT_S = 30.0  # bound of every wait; the tests never assert on elapsed time
FAST = RestartPolicy(backoff_initial_s=0.01, backoff_max_s=0.04, budget=3, window_s=60.0)


def script(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", textwrap.dedent(code))


def sleeper(marker: Path, name: str) -> tuple[str, ...]:
    """A child that appends ``name`` to ``marker`` when it gets SIGTERM, then exits 0.

    Once its handler is in place it says "ready" on stderr and creates ``<marker>.<name>``.
    """
    ready = f"{marker}.{name}"
    return script(
        f"""
        import pathlib, signal, sys, time
        def bye(*_):
            with open({str(marker)!r}, "a") as f:
                f.write({name!r} + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        pathlib.Path({ready!r}).touch()
        print("ready", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
        """
    )


async def wait_for_file(path: Path) -> None:
    async def appears() -> None:
        while not path.exists():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(appears(), WAIT_S)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def wait_running(sup: Supervisor, name: str) -> int:
    async def running() -> int:
        while (status := sup.child(name)).state != ChildState.RUNNING or status.pid is None:
            await asyncio.sleep(0.01)
        return status.pid

    return await asyncio.wait_for(running(), WAIT_S)


def test_restart_policy_doubles_the_delay_up_to_the_cap() -> None:
    # given the default policy: 0.5 s doubling, capped at 10 s
    policy = RestartPolicy()
    # when the delays of the first seven restarts are computed
    delays = [policy.delay(n) for n in range(7)]
    # then they double from 0.5 s and never pass 10 s
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0], delays


async def test_supervisor_restarts_a_crashing_child_with_backoff_then_gives_up(
    tmp_path: Path,
) -> None:
    # given a child that always crashes and a healthy one beside it
    runs = tmp_path / "runs"
    crasher = script(f"open({str(runs)!r}, 'a').write('x'); raise SystemExit(1)")
    sup = Supervisor(
        [ChildSpec("crasher", crasher), ChildSpec("healthy", sleeper(tmp_path / "t", "h"))],
        policy=FAST,
    )
    await sup.start()
    try:
        # when the crasher has used its restart budget
        status = await asyncio.wait_for(sup.wait_finished("crasher"), WAIT_S)
        # then it ran once plus one run per allowed restart, each after a doubled delay
        assert status.state == ChildState.GAVE_UP, status
        assert status.runs == FAST.budget + 1, status
        assert runs.read_text() == "x" * (FAST.budget + 1)
        assert status.delays == (0.01, 0.02, 0.04), status
        assert status.returncode == 1
        # and the other child keeps running, while the owner is told (to stop the stack)
        assert sup.child("healthy").state == ChildState.RUNNING
        assert sup.failed.is_set() and sup.failure is not None
        assert (sup.failure.name, sup.failure.state) == ("crasher", ChildState.GAVE_UP)
        assert sup.failure.describe().startswith("crasher kept crashing (exit status 1)")
    finally:
        await sup.stop()


async def test_an_optional_child_given_up_on_is_not_a_failure(tmp_path: Path) -> None:
    # given a child that always crashes, not required
    crasher = script("raise SystemExit(1)")
    sup = Supervisor([ChildSpec("crasher", crasher, required=False)], policy=FAST)
    await sup.start()
    try:
        # when it has used its restart budget, then it is given up on, quietly
        status = await asyncio.wait_for(sup.wait_finished("crasher"), WAIT_S)
        assert status.state == ChildState.GAVE_UP
        assert not sup.failed.is_set() and sup.failure is None
    finally:
        await sup.stop()


async def test_supervisor_restarts_a_child_killed_by_a_signal(tmp_path: Path) -> None:
    # given a running child
    sup = Supervisor([ChildSpec("victim", sleeper(tmp_path / "t", "v"))], policy=FAST)
    await sup.start()
    try:
        first_pid = await wait_running(sup, "victim")
        # when it is killed from outside
        os.kill(first_pid, signal.SIGKILL)

        # then a new process takes its place
        async def replaced() -> int:
            while (pid := await wait_running(sup, "victim")) == first_pid:
                await asyncio.sleep(0.01)
            return pid

        second_pid = await asyncio.wait_for(replaced(), WAIT_S)
        assert second_pid != first_pid
        assert sup.child("victim").runs == 2
        assert sup.child("victim").returncode == -signal.SIGKILL
    finally:
        await sup.stop()


async def test_supervisor_does_not_restart_a_child_that_exits_0() -> None:
    # given a child that finishes its work and exits 0
    sup = Supervisor([ChildSpec("oneshot", script("print('done')"))], policy=FAST)
    await sup.start()
    try:
        # when it has exited
        status = await asyncio.wait_for(sup.wait_finished("oneshot"), WAIT_S)
        # then it is not restarted, and the supervisor knows nothing is left to run
        assert status.state == ChildState.EXITED, status
        assert status.runs == 1
        assert status.delays == ()
        assert sup.done.is_set()
        assert not sup.failed.is_set()
    finally:
        await sup.stop()


async def test_supervisor_reports_a_required_child_that_exits_2_without_restarting_it(
    tmp_path: Path,
) -> None:
    # given a required child with a configuration error, and a healthy child
    bad = script(
        """
        import sys
        print("starting", file=sys.stderr)
        print("worker cannot run: model /x.onnx does not exist", file=sys.stderr)
        sys.exit(2)
        """
    )
    marker = tmp_path / "terminated"
    sup = Supervisor(
        [ChildSpec("healthy", sleeper(marker, "healthy")), ChildSpec("worker-1", bad)],
        policy=FAST,
        stderr=lambda data: None,
    )
    await sup.start()
    try:
        # when the bad child exits 2
        await asyncio.wait_for(sup.failed.wait(), WAIT_S)
        # then it is not restarted and its last words are kept
        assert sup.failure is not None
        assert sup.failure.name == "worker-1"
        assert sup.failure.returncode == 2
        assert sup.failure.message == "worker cannot run: model /x.onnx does not exist"
        assert sup.child("worker-1").state == ChildState.FAILED
        assert sup.child("worker-1").runs == 1
        await wait_for_file(Path(f"{marker}.healthy"))  # its SIGTERM handler is in place
    finally:
        # and stopping `up`-style stops the rest
        await asyncio.wait_for(sup.stop(), WAIT_S)
    assert marker.read_text() == "healthy\n"
    assert sup.child("healthy").state == ChildState.STOPPED


async def test_supervisor_ignores_exit_2_of_a_child_that_is_not_required() -> None:
    # given an optional child that exits 2
    sup = Supervisor(
        [ChildSpec("optional", script("raise SystemExit(2)"), required=False)],
        policy=FAST,
        stderr=lambda data: None,
    )
    await sup.start()
    try:
        status = await asyncio.wait_for(sup.wait_finished("optional"), WAIT_S)
        # then it is not restarted, and no failure is reported
        assert status.state == ChildState.FAILED
        assert status.runs == 1
        assert not sup.failed.is_set()
    finally:
        await sup.stop()


async def test_supervisor_stop_terminates_children_in_reverse_start_order(tmp_path: Path) -> None:
    # given three running children that record the SIGTERM they get
    marker = tmp_path / "terminated"
    names = ["gateway", "ingest", "worker-1"]
    sup = Supervisor([ChildSpec(n, sleeper(marker, n)) for n in names], policy=FAST)
    await sup.start()
    pids = [await wait_running(sup, n) for n in names]
    # wait until each has installed its handler (it prints "ready" after)
    for name in names:
        await asyncio.wait_for(_wait_tail(sup, name, "ready"), WAIT_S)
    # when the supervisor stops
    await asyncio.wait_for(sup.stop(), WAIT_S)
    # then they were terminated last-started first, and none is left
    assert marker.read_text().split() == list(reversed(names))
    assert [s.state for s in sup.status()] == [ChildState.STOPPED] * 3
    assert not any(pid_alive(pid) for pid in pids)


async def test_supervisor_kills_a_child_that_ignores_sigterm_at_its_deadline(
    tmp_path: Path,
) -> None:
    # given a child that ignores SIGTERM and has a short stop deadline
    stubborn = script(
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
        """
    )
    sup = Supervisor([ChildSpec("stubborn", stubborn, stop_timeout_s=0.3)], policy=FAST)
    await sup.start()
    pid = await wait_running(sup, "stubborn")
    await asyncio.wait_for(_wait_tail(sup, "stubborn", "ready"), WAIT_S)
    # when the supervisor stops
    await asyncio.wait_for(sup.stop(), WAIT_S)
    # then the child was killed with SIGKILL and is gone
    assert sup.child("stubborn").returncode == -signal.SIGKILL
    assert not pid_alive(pid)


async def test_supervisor_stop_during_backoff_does_not_restart(tmp_path: Path) -> None:
    # given a crashing child with a long backoff
    slow = RestartPolicy(backoff_initial_s=60.0, backoff_max_s=60.0, budget=3)
    sup = Supervisor([ChildSpec("crasher", script("raise SystemExit(1)"))], policy=slow)
    await sup.start()

    async def in_backoff() -> None:
        while sup.child("crasher").state != ChildState.BACKOFF:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(in_backoff(), WAIT_S)
    # when the supervisor stops during the backoff
    await asyncio.wait_for(sup.stop(), WAIT_S)
    # then the child is not started again
    assert sup.child("crasher").runs == 1
    assert sup.child("crasher").state == ChildState.STOPPED


async def test_supervisor_children_do_not_get_the_terminals_ctrl_c(tmp_path: Path) -> None:
    # given a running child
    marker = tmp_path / "terminated"
    sup = Supervisor([ChildSpec("child", sleeper(marker, "child"))], policy=FAST)
    await sup.start()
    try:
        pid = await wait_running(sup, "child")
        # then it leads its own process group, away from the terminal's foreground group
        assert os.getpgid(pid) == pid
        assert os.getpgid(pid) != os.getpgid(0)
    finally:
        await sup.stop()


@pytest.mark.parametrize("names", [["a", "a"], ["x", "y", "x"]])
def test_supervisor_refuses_duplicate_names(names: list[str]) -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ChildSpec(n, script("pass")) for n in names])


async def _wait_tail(sup: Supervisor, name: str, text: str) -> None:
    child = sup._get(name)  # the tail is private; tests read it to sync with the child
    while text.encode() not in child.tail:
        await asyncio.sleep(0.01)


def test_supervised_children_die_when_the_supervisor_process_is_sigkilled(tmp_path: Path) -> None:
    # given a process that supervises one long-running child
    parent_code = textwrap.dedent(
        """
        import asyncio, sys
        from pitchside.supervisor import ChildSpec, Supervisor
        async def main():
            child = ChildSpec("child", (sys.executable, "-c", "import time; time.sleep(600)"))
            sup = Supervisor([child])
            await sup.start()
            print(sup.child("child").pid, flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert pid_alive(child_pid)
        # when the supervisor's process is killed without a chance to clean up
        parent.kill()
        parent.wait(WAIT_S)
        # then the kernel's death signal ends the child too
        deadline = time.monotonic() + WAIT_S
        while pid_alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_alive(child_pid), f"child {child_pid} outlived its SIGKILLed supervisor"
    finally:
        parent.kill()
        parent.wait(WAIT_S)
