"""``spark-submit.sh`` against a real standalone cluster: a master and a worker started by
``docker/spark-daemon.sh`` (what ``docker/compose.yaml`` runs) from the pinned pyspark. The job's
executors are the worker's separate processes; they receive the vitalwatch library zip that
``spark-submit.sh`` ships and run the feature builder's pandas UDFs; the vectors equal the same
export run in-process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyspark
import pytest
import requests
from pyspark.sql import SparkSession

from tests.helpers import ARTIFACTS, ROOT
from vitalwatch.bench import train as train_bench
from vitalwatch.config import Settings

pytestmark = pytest.mark.integration
DAEMON = ROOT / "docker" / "spark-daemon.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """(master URL, master web UI port, worker directory) of a running master + one worker."""
    work = tmp_path / "worker"
    env = {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_WORKER_DIR": str(work),
           "SPARK_LOCAL_IP": "127.0.0.1"}
    port, ui = _free_port(), _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "standalone-cluster.log", "wb")  # noqa: SIM115
    procs = [subprocess.Popen([str(DAEMON), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]
    url = f"spark://127.0.0.1:{port}"
    procs.append(subprocess.Popen([str(DAEMON), "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                                   "--cores", "2", "--memory", "3g", "--webui-port", str(_free_port())],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert all(p.poll() is None for p in procs), f"a daemon exited; see {log.name}"
            assert time.monotonic() < deadline, f"no worker registered; see {log.name}"
            try:
                if requests.get(f"http://127.0.0.1:{ui}/json/", timeout=5).json().get("aliveworkers", 0) >= 1:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        yield url, ui, work
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)


def test_spark_submit_runs_a_job_on_a_standalone_cluster_with_the_library_shipped(
        spark: SparkSession, base_settings: Settings, standalone, tmp_path: Path) -> None:
    url, ui, work = standalone
    out = tmp_path / "cluster.npz"
    res = subprocess.run([str(ROOT / "spark-submit.sh"), "--master", url, "jobs/benchmark_train.py", "export",
                          "--patients", "40", "--out", str(out)],
                         env={**os.environ, "VITALWATCH__MODELS__TRAIN_DRIVER_MEMORY": "2g"}, cwd=ROOT,
                         capture_output=True, text=True, timeout=480)
    assert res.returncode == 0, res.stderr[-3000:]

    # the master ran it, on the worker's executors: separate processes, each in its own directory
    # holding the library zip and conf/ that spark-submit.sh shipped
    master = requests.get(f"http://127.0.0.1:{ui}/json/", timeout=10).json()
    assert [a["name"] for a in master["completedapps"]] == ["vitalwatch-benchmark-train"]
    (app,) = list(work.glob("app-*"))
    executors = [d for d in app.iterdir() if d.is_dir()]
    assert executors and all((d / "vitalwatch.zip").is_file() and (d / "base.yaml").is_file() for d in executors)
    logs = [(d / "stderr").read_text() for d in executors]
    assert all("org.apache.spark.executor.CoarseGrainedExecutorBackend" in t for t in logs)  # own JVMs
    assert any("ArrowPythonRunner" in t for t in logs), "the executors ran the feature builder's pandas UDFs"

    # the same vectors and labels as the feature builder gives in-process
    local = tmp_path / "local.npz"
    train_bench.export_matrices(spark, base_settings, local, patients=40)
    a, b = np.load(out), np.load(local)
    assert json.loads(str(a["meta"]))["source"] == json.loads(str(b["meta"]))["source"]
    assert a["x_train"].shape[0] > 100
    for k in (k for k in b.files if k != "meta"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
