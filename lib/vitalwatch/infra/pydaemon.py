"""The PySpark daemon for vitalwatch's Python workers: ``pyspark.daemon`` with one fix.

Set as ``spark.python.daemon.module`` (``spark.python_daemon_module`` in conf/). Why: a PySpark
worker calls ``importlib.invalidate_caches()`` at the start of every task, and on Python ≥ 3.10
that makes each ``zipimporter`` on ``sys.path`` re-read its archive's whole directory. Every
connector jar resolved by ``spark.jars.packages`` is on that path (spark-submit adds them as
Python files), so each task re-read dozens of jars: about 1.2 s of a 1.5 s scoring task on two
cores (measured with py-spy: 354 of 485 worker samples in ``_read_directory``). Here an
archive is re-read only when its size or modification time has changed, which keeps what the
invalidation is for (a replaced file is still picked up).

Executors must be able to import vitalwatch before a task starts, so this needs vitalwatch
installed where the daemon runs (local mode, docker/'s image); with the library shipped only
as ``--py-files``, leave the setting null."""

from __future__ import annotations

import os
import zipimport

_reread = zipimport.zipimporter.invalidate_caches
_read_as: dict[str, tuple[int, int]] = {}


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def invalidate_caches(self: zipimport.zipimporter) -> None:
    """Re-read the archive's directory only if the archive changed since it was last read."""
    sig = _signature(self.archive)
    if sig is not None and _read_as.get(self.archive) == sig:
        return
    _reread(self)
    if sig is not None:
        _read_as[self.archive] = sig


def install() -> None:
    zipimport.zipimporter.invalidate_caches = invalidate_caches  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from pyspark.daemon import manager

    manager()
