"""One host of a multi-host training job: start its ps-lite roles, watch them and the other hosts.

Every host runs this instead of training itself: the first host starts the scheduler, every host
a server and its worker (`python -m gtsrb.train` with DMLC_ROLE=worker, which trains with a dist
kvstore). Then it supervises, checking every few tenths of a second:
- its own roles: a role that ends with an error fails the job (the worker's own sentence kept);
- the other hosts (gtsrb.train.watch): a host that fails, never connects or goes silent for
  `peer_timeout` seconds fails the job with a sentence naming it, on the first host;
- SIGTERM: passed to its worker (which stops at the same batch as every other worker, see
  gtsrb.train.distributed) and to every other host through the watch; roles still running
  max(peer_timeout, 60) seconds later are killed.
The roles run in their own session (a SIGTERM to the container's process group reaches the
launcher, which decides) and die with the launcher (PR_SET_PDEATHSIG), so nothing outlives it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError, failure_reason, output_dir
from gtsrb.train.cluster import Cluster
from gtsrb.train.watch import Follower, Leader

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between checks of the roles and the watch
MIN_STOP_GRACE = 60.0  # seconds; SageMaker itself sends SIGKILL 120 s after SIGTERM
OWN_FAILURE_WAIT = 3.0  # seconds to wait for this host's own failure sentence when another host fails
_PR_SET_PDEATHSIG = 1
ROLE_COMMAND = [sys.executable, "-c", "import mxnet"]  # MXNet runs the DMLC_ROLE server/scheduler loop at import


def _die_with_parent() -> None:
    """In the child before exec: its own session, SIGKILL when the launcher dies, and SIGTERM
    blocked: one that comes while the worker still imports waits (pending) until its handler is
    there (gtsrb.train.loop.StopFlag.install unblocks it), instead of killing a worker that has
    not left ps-lite. The mask survives exec; the scheduler and server never see a SIGTERM."""
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def start_role(cluster: Cluster, role: str, argv: list[str]) -> subprocess.Popen:
    """Start one ps-lite role of this host."""
    env = {**os.environ, **cluster.role_env(role)}
    proc = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)
    log.info("event=role role=%s host=%s pid=%d", role, cluster.current, proc.pid)
    return proc


def start_roles(cluster: Cluster, train_argv: list[str]) -> dict[str, subprocess.Popen]:
    """scheduler (first host only), server and worker of this host."""
    roles = {}
    if cluster.is_leader:
        roles["scheduler"] = start_role(cluster, "scheduler", ROLE_COMMAND)
    roles["server"] = start_role(cluster, "server", ROLE_COMMAND)
    roles["worker"] = start_role(cluster, "worker", [sys.executable, "-m", "gtsrb.train", *train_argv])
    return roles


class Launcher:
    """The supervision of one host's roles (see the module docstring)."""

    def __init__(self, cluster: Cluster, train_argv: list[str], peer_timeout: float) -> None:
        self.cluster, self.train_argv, self.peer_timeout = cluster, train_argv, peer_timeout
        self.roles: dict[str, subprocess.Popen] = {}
        self.signalled = False
        self.stop_deadline: float | None = None
        self.watch: Leader | Follower | None = None

    def run(self) -> None:
        """Start everything, supervise until the worker is done; StepError naming the host on any failure."""
        previous = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self.watch = self._start_watch()
            self.roles = start_roles(self.cluster, self.train_argv)
            self._supervise()
            self._finish()
        except StepError as err:
            self._tell(f"fail {err}")
            raise
        finally:
            self._end_roles()
            if self.watch is not None:
                self.watch.close()
            signal.signal(signal.SIGTERM, previous)

    def _start_watch(self) -> Leader | Follower:
        uri, port = self.cluster.scheduler_address()
        others = [h for h in self.cluster.hosts if h != self.cluster.leader]
        if self.cluster.is_leader:
            return Leader(others, port + 1, self.peer_timeout)
        return Follower(self.cluster.current, self.cluster.leader, (uri, port + 1), self.peer_timeout)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signalled = True

    def _supervise(self) -> None:
        """Until this host's worker ends: check the roles, the other hosts and the stop signal."""
        while True:
            self._check_stop()
            code = self.roles["worker"].poll()
            if code is not None:
                if code == -signal.SIGTERM and self.stop_deadline is not None:
                    return  # the SIGTERM we passed on found the worker before or after its handler: stopped as asked
                if code != 0:
                    raise StepError(self._worker_failure(code))
                return
            for role in ("scheduler", "server"):
                code = self.roles[role].poll() if role in self.roles else None
                if code not in (None, 0):
                    raise StepError(f"the ps-lite {role} on host {self.cluster.current} ended with {describe(code)}.")
            problem = self.watch.problem()
            if problem:
                raise StepError(self._own_failure_first(problem))
            time.sleep(POLL)

    def _own_failure_first(self, problem: str) -> str:
        """A failing worker takes the others down within a second or two (ps-lite aborts them): if this
        host's worker ends with its own sentence meanwhile, that is the cause to report."""
        deadline = time.monotonic() + OWN_FAILURE_WAIT
        while time.monotonic() < deadline:
            code = self.roles["worker"].poll()
            if code is not None and code > 0:
                return self._worker_failure(code)
            time.sleep(POLL)
        return problem

    def _check_stop(self) -> None:
        """SIGTERM here or on another host: stop the worker once, then give it peer_timeout seconds."""
        if self.stop_deadline is None and (self.signalled or self.watch.stop_requested()):
            log.info("event=stop host=%s reason=%s", self.cluster.current, "SIGTERM" if self.signalled else "another_host")
            self._tell("stop")
            self.roles["worker"].send_signal(signal.SIGTERM)
            self.stop_deadline = time.monotonic() + self.stop_grace
        if self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
            raise StepError(f"the worker on host {self.cluster.current} did not stop within {self.stop_grace:g} s "
                            "of SIGTERM; it was killed.")

    @property
    def stop_grace(self) -> float:
        """Seconds a stopping worker gets: finish a batch, write the checkpoint, leave ps-lite."""
        return max(self.peer_timeout, MIN_STOP_GRACE)

    def _worker_failure(self, code: int) -> str:
        """The worker's own sentence if it wrote one, else how it ended; naming this host."""
        reason = failure_reason(output_dir() / sagemaker_job.TRAINING_FAILURE_FILE)
        if reason and code > 0:
            return reason if self.cluster.is_leader else f"{reason} (on host {self.cluster.current})"
        return f"the worker on host {self.cluster.current} ended with {describe(code)}."

    def _finish(self) -> None:
        """The worker is done: say so, and on the first host wait until every other host is done."""
        self._tell("done")
        if not isinstance(self.watch, Leader):
            return
        deadline = time.monotonic() + self.peer_timeout
        while not self.watch.all_done():
            problem = self.watch.problem()
            if problem:
                raise StepError(problem)
            if time.monotonic() > deadline:
                raise StepError(f"the other hosts did not finish within peer_timeout={self.peer_timeout:g} s of host "
                                f"{self.cluster.current}.")
            time.sleep(POLL)

    def _tell(self, line: str) -> None:
        """A line to the other hosts (the first host broadcasts, the others tell the first)."""
        if isinstance(self.watch, Leader):
            self.watch.broadcast(line)
        elif isinstance(self.watch, Follower):
            self.watch.tell(line)

    def _end_roles(self) -> None:
        """After a good end, let the scheduler and server leave by themselves (ps-lite ends them once
        every worker has left: a server killed early could leave another host's worker waiting); kill
        what is left after stop_grace seconds, or at once after a failure or a worker that the
        SIGTERM found before its handler (it never left ps-lite, so they would wait for it)."""
        deadline = time.monotonic() + self.stop_grace
        worker = self.roles.get("worker")
        for proc in self.roles.values():
            while proc.poll() is None and time.monotonic() < deadline and worker is not None and worker.returncode == 0:
                if self.watch is not None and self.watch.problem():
                    break
                time.sleep(POLL)
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def describe(code: int) -> str:
    """`exit code 3` or `signal SIGKILL`."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def run(cluster: Cluster, argv: list[str], peer_timeout: float) -> None:
    """This host's part of a multi-host job (the train step's main on every host)."""
    log.info("event=cluster host=%s hosts=%s leader=%s interface=%s", cluster.current, ",".join(cluster.hosts),
             cluster.leader, cluster.interface or "-")
    Launcher(cluster, argv, peer_timeout).run()
    if not cluster.is_leader:
        log.info("event=host_done host=%s note=the_first_host_writes_the_model", cluster.current)

