"""The pipeline's applications as separate processes on one machine (``vitalwatch run``).

Each of :data:`vitalwatch.pipeline.APPS` is its own Spark application in its own process
(``vitalwatch pipeline --app NAME``), and the notifier (``vitalwatch notify``) is one more: a
JVM or Python crash, a memory blow-up or a stuck store in the lake or the serving copies
cannot take the alert path with it. The alert app starts first; the lake and serving apps run
at a lower CPU priority (``nice``), so on a small machine the alert path gets the cores when it
needs them. A process that exits is started again after a back-off (the same rule as a stage's,
:func:`vitalwatch.pipeline.supervisor.backoff_s`), forever, until :meth:`AppProcesses.stop`.

Children get this process's exact settings through a YAML overlay (mode 0600, no secrets:
those come from the environment as for any process)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vitalwatch.config import OVERLAY_ENV, Settings
from vitalwatch.pipeline.health import read_all
from vitalwatch.pipeline.stages import ALERT_APP, APP_ORDER
from vitalwatch.pipeline.supervisor import backoff_s

log = logging.getLogger(__name__)
# CPU priority per process: the alert path (the alert app, and the notifier that delivers its
# webhooks) at full priority; every other application of the registry below it.
NICE = {ALERT_APP: 0, "notifier": 0, **{a: 10 for a in APP_ORDER if a != ALERT_APP}}


def app_command(app: str) -> list[str]:
    """How a child is started (the same CLI, in this interpreter)."""
    if app == "notifier":
        return [sys.executable, "-m", "vitalwatch", "notify"]
    return [sys.executable, "-m", "vitalwatch", "pipeline", "--app", app]


def write_overlay(settings: Settings, path: Path) -> Path:
    """``settings`` as a YAML overlay for children (:data:`vitalwatch.config.OVERLAY_ENV`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = settings.model_dump(mode="json", exclude={"profile"})
    data["alerts"].pop("webhooks", None)  # endpoints and their secrets: the children's own config/env
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Child:
    app: str
    proc: subprocess.Popen | None = None
    failures: int = 0
    next_try: float = 0.0
    started: int = 0
    since: float = 0.0  # monotonic time of the last start
    log_file: Path | None = None
    exits: list[int] = field(default_factory=list)


class AppProcesses:
    """Start, watch and stop the application processes (see module doc)."""

    def __init__(self, settings: Settings, apps: Sequence[str], *, overlay: bool = False,
                 say: Callable[[str], None] = print, env: dict[str, str] | None = None) -> None:
        self.settings, self.say = settings, say
        self.dir = settings.path(settings.infra.work_dir) / "pipeline"
        self.children = {a: Child(a, log_file=self.dir / f"{a}.log") for a in apps}
        self.env = dict(os.environ if env is None else env)
        if overlay:
            self.env[OVERLAY_ENV] = str(write_overlay(settings, self.dir / "settings-overlay.yaml"))

    def start(self, app: str) -> None:
        c = self.children[app]
        assert c.log_file is not None
        c.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(c.log_file, "ab")  # noqa: SIM115 - the child owns it; closed when we exit
        nice = NICE.get(app, 0)
        c.proc = subprocess.Popen(app_command(app), stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                  start_new_session=True, preexec_fn=lambda: _child_setup(nice))
        c.started += 1
        c.since = time.monotonic()
        self.say(f"{app}: started (pid {c.proc.pid}{f', nice {nice}' if nice else ''}; log {c.log_file})")

    def start_all(self, first: str = ALERT_APP, first_ready_s: float = 180.0) -> None:
        """``first`` (the alert app), then — once it reports health, or after ``first_ready_s`` —
        the others."""
        if first in self.children:
            self.start(first)
            wait_until(lambda: self.reported(first), first_ready_s)
        for app in self.children:
            if app != first:
                self.start(app)

    def reported(self, app: str) -> bool:
        c = self.children[app]
        return any(d["app"] == app and d.get("pid") == (c.proc.pid if c.proc else None)
                   for d in read_all(self.settings))

    def check(self) -> None:
        """Start again, after a back-off, any child that has exited."""
        now = time.monotonic()
        for app, c in self.children.items():
            if c.proc is not None and c.proc.poll() is not None:
                c.exits.append(c.proc.returncode)
                c.failures += 1
                wait = backoff_s(self.settings, c.failures)
                c.next_try, c.proc = now + wait, None
                self.say(f"{app}: exited with {c.exits[-1]}; starting it again in {wait:.0f} s")
            elif c.proc is None and now >= c.next_try and c.started:
                self.start(app)
            elif c.proc is not None and c.failures and now - c.since > self.settings.streaming.restart_backoff_max_s * 2:
                c.failures = 0  # it has stayed up: the next exit starts a new run of back-offs

    def kill(self, app: str, sig: int = signal.SIGKILL) -> int | None:
        """Signal one child's process group (fault injection, operations); its pid."""
        c = self.children[app]
        if c.proc is None or c.proc.poll() is not None:
            return None
        os.killpg(c.proc.pid, sig)
        return c.proc.pid

    def pause(self, app: str) -> None:
        """Stop a child and keep it stopped until :meth:`resume` (it is not restarted)."""
        c = self.children[app]
        if c.proc is not None:
            _terminate(c.proc)
        c.proc, c.started = None, 0

    def resume(self, app: str) -> None:
        self.start(app)

    def stop(self, grace_s: float = 60.0) -> None:
        procs = [c.proc for c in self.children.values() if c.proc is not None]
        for p in procs:
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait(timeout=10)
        for c in self.children.values():
            c.proc = None


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 1.0,
               failed: Callable[[], bool] = lambda: False) -> bool:
    """Poll ``condition`` until it holds (True), or until ``failed()`` or the timeout (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if failed() or time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def _child_setup(nice: int) -> None:
    """In the child before exec: its CPU priority, and SIGTERM when its parent dies (Linux), so
    applications never outlive the ``vitalwatch run`` that supervises them as orphans."""
    if nice:
        os.nice(nice)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal(p: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, sig)


def _terminate(p: subprocess.Popen, grace_s: float = 60.0) -> None:
    _signal(p, signal.SIGTERM)
    try:
        p.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal(p, signal.SIGKILL)
        p.wait(timeout=10)
