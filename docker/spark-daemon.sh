#!/usr/bin/env bash
# A Spark standalone daemon (master or worker) in the foreground, from the pyspark the image
# installed, so the cluster runs exactly the Spark version the jobs were built against.
#   spark-daemon.sh org.apache.spark.deploy.master.Master --host spark-master --port 7077
#   spark-daemon.sh org.apache.spark.deploy.worker.Worker spark://spark-master:7077 --cores 2
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <daemon class> [args...]" >&2; exit 2; }
SPARK_HOME="${SPARK_HOME:-$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export SPARK_HOME SPARK_NO_DAEMONIZE=1 SPARK_WORKER_DIR="${SPARK_WORKER_DIR:-/tmp/spark-worker}"
exec "$SPARK_HOME/bin/spark-class" "$@"
