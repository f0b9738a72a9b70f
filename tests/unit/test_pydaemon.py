"""The Python workers' daemon: an unchanged archive is not re-read at each task, a changed one is,
and Spark really starts its workers through it (a Python UDF runs and reports the module)."""

from __future__ import annotations

import importlib
import os
import sys
import zipfile
import zipimport

from vitalwatch.infra import pydaemon


def _zip(path, modules: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, src in modules.items():
            z.writestr(f"{name}.py", src)


def test_unchanged_archive_is_read_once_changed_one_again(tmp_path, monkeypatch) -> None:
    archive = tmp_path / "lib.jar"
    _zip(archive, {"vw_zip_a": "X = 1\n"})
    reads: list[str] = []
    real = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda p: (reads.append(p), real(p))[1])
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", pydaemon.invalidate_caches)
    monkeypatch.setattr(pydaemon, "_read_as", {})
    monkeypatch.syspath_prepend(str(archive))
    assert importlib.import_module("vw_zip_a").X == 1
    importlib.invalidate_caches()  # the first task's invalidation reads it (and remembers how)
    ours = lambda: [r for r in reads if r == str(archive)]  # noqa: E731 (other zips may be on sys.path)
    n = len(ours())
    assert n >= 1
    for _ in range(5):
        importlib.invalidate_caches()  # what every later PySpark task does
    assert len(ours()) == n, "an unchanged archive was re-read"

    _zip(archive, {"vw_zip_a": "X = 1\n", "vw_zip_b": "Y = 2\n"})
    os.utime(archive, ns=(1, 1))  # a different mtime as well as a different size
    importlib.invalidate_caches()
    assert len(ours()) == n + 1
    assert importlib.import_module("vw_zip_b").Y == 2
    sys.modules.pop("vw_zip_a", None)
    sys.modules.pop("vw_zip_b", None)


def test_spark_workers_run_under_the_daemon(spark, base_settings) -> None:
    from pyspark.sql import functions as F

    assert spark.conf.get("spark.python.daemon.module") == base_settings.spark.python_daemon_module

    @F.udf("string")
    def patched(_: int) -> str:
        return zipimport.zipimporter.invalidate_caches.__code__.co_filename

    mods = {r[0] for r in spark.range(4).select(patched("id")).collect()}
    assert len(mods) == 1 and mods.pop().endswith("vitalwatch/infra/pydaemon.py")
