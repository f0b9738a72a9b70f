"""Our web apps (the dashboard, the API) as background processes for `vitalwatch run`, the
benchmark and the tests: each in its own process group (so its workers go with it), waited for
until its probe URL answers, stopped with the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from vitalwatch.config import project_root


def start(cmd: list[str], probe: str, *, name: str, verify: str | bool = True, env: dict[str, str] | None = None,
          log: Path | None = None, timeout_s: float = 60) -> subprocess.Popen:
    """Run ``cmd`` in the background and return once ``probe`` answers 200 (HTTPS checked with
    ``verify``); RuntimeError if it exits first, TimeoutError (and stopped) if it never answers."""
    import httpx

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                            cwd=project_root(), start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            if httpx.get(probe, timeout=2, verify=verify).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise TimeoutError(f"the {name} did not answer {probe} within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace_s``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
