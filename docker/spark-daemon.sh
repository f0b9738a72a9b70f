#!/usr/bin/env bash
# A Spark standalone daemon (master or worker) in the foreground, from the pyspark the image
# installed, so the cluster runs exactly the Spark version the jobs were built against.
#   spark-daemon.sh org.apache.spark.deploy.master.Master --host spark-master --port 7077
#   spark-daemon.sh org.apache.spark.deploy.worker.Worker spark://spark-master:7077 --cores 2
# Authentication (docker/compose.yaml): SPARK_DAEMON_JAVA_OPTS="-Dspark.authenticate=true ..."
# and the shared secret in _SPARK_AUTH_SECRET, which Spark reads from the environment (a worker
# hands it to the executors it starts the same way), never from a command line.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <daemon class> [args...]" >&2; exit 2; }
case " ${SPARK_DAEMON_JAVA_OPTS:-} " in
  *" -Dspark.authenticate=true "*)
    [ -n "${_SPARK_AUTH_SECRET:-}" ] || { echo "$0: spark.authenticate is on but _SPARK_AUTH_SECRET is not set" >&2; exit 2; } ;;
esac
SPARK_HOME="${SPARK_HOME:-$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export SPARK_HOME SPARK_NO_DAEMONIZE=1 SPARK_WORKER_DIR="${SPARK_WORKER_DIR:-/tmp/spark-worker}"
exec "$SPARK_HOME/bin/spark-class" "$@"
