"""Supervising local server processes: start detached, remember the pid, stop cleanly.

Servers outlive the CLI call that started them (``infra up`` returns), so each keeps a pid
file and a log under the work directory; ``down`` sends SIGTERM to the whole process group
and SIGKILL only after a grace period."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vitalwatch.config import Settings


class InfraError(RuntimeError):
    """A local server could not be prepared, started or reached."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(wanted: int, previous: int | None, host: str) -> int:
    """A configured port if set; else the port used last time if still free; else any free one."""
    if wanted:
        return wanted
    if previous and port_is_free(previous, host):
        return previous
    return free_port(host)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def start_detached(
    argv: Sequence[str], *, log_file: Path, pid_file: Path, env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in its own session (survives this process), output appended to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def stop_pid(pid: int | None, grace_s: float = 30.0) -> bool:
    """SIGTERM the process group, wait, then SIGKILL. True if something was running."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        _reap(pid)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, pid: int | None = None,
    log_file: Path | None = None, interval_s: float = 0.5,
) -> None:
    """Poll ``check`` until true; fail fast (with the log's tail) if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if pid is not None and not pid_alive(pid):
            raise InfraError(f"{what} exited during start-up{_tail(log_file)}")
        time.sleep(interval_s)
    raise InfraError(f"{what} not healthy after {timeout_s:.0f}s{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 25) -> str:
    if not log_file or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(text)


class LocalServer:
    """Common layout of a local server: ``<work>/<name>/`` with its log and pid file."""

    name = "server"
    log_name = "server.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        self.s = settings
        self.host = settings.infra.host
        self.dir = work / self.name
        self.log_file = self.dir / self.log_name
        self.pid_file = self.dir / f"{self.name}.pid"


def unprivileged(user: str, what: str, owned: Path) -> list[str]:
    """The command prefix that runs ``what`` as ``user`` when we are root (``setpriv``), after
    giving ``user`` the directory ``owned``; empty when we are not root. A server holding
    patient data never runs as root: a flaw in it must not own the machine."""
    import grp
    import pwd
    import shutil

    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam(user)
    except KeyError as e:
        raise InfraError(f"user {user!r} for {what} does not exist") from e
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise InfraError(f"running as root needs util-linux setpriv to start {what} unprivileged")
    _check_traversable(owned, pw.pw_uid, what)
    subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(owned)], check=True)
    group = grp.getgrgid(pw.pw_gid).gr_name
    return [setpriv, f"--reuid={pw.pw_name}", f"--regid={group}", "--clear-groups"]


def _check_traversable(path: Path, uid: int, what: str) -> None:
    """The unprivileged user must reach the work dir: every parent needs o+x (or be theirs)."""
    for p in [path, *path.parents]:
        if not p.exists():
            continue
        st = p.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise InfraError(f"{what} runs as uid {uid} but cannot enter {p} (mode "
                             f"{oct(st.st_mode & 0o777)}); choose an infra.work_dir it can reach")


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically, with ``mode`` from the first byte: secrets,
    keys and state are never readable by others, nor seen half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
