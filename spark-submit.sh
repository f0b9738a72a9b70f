#!/usr/bin/env bash
# Submit a vitalwatch job to Spark: local[*], a standalone master, YARN or Kubernetes.
#
#   ./spark-submit.sh [--master URL] [--deploy-mode client|cluster] [--profile NAME]
#                     [--spark-opt "--num-executors 4"]... jobs/<job>.py [job args...]
#
# Ships, for every job: the pinned connector packages (conf/spark-packages.txt, the one place
# the coordinates live), Delta/timezone/state-store settings (the same as lib/vitalwatch/spark.py
# builds in-process), the vitalwatch library as a zip on executors' PYTHONPATH, conf/*.yaml and
# conf/log4j2.properties (Spark's logging: WARN, known-harmless warnings at ERROR).
# Executors need the Python dependencies of pyproject.toml (the docker image has them).
# Examples:
#   ./spark-submit.sh jobs/pipeline.py --available-now
#   ./spark-submit.sh --master spark://spark-master:7077 --profile cluster jobs/pipeline.py
#   ./spark-submit.sh --master yarn --deploy-mode cluster --profile cluster jobs/pipeline.py
#   ./spark-submit.sh --master k8s://https://api:6443 --deploy-mode cluster --profile cluster \
#       --spark-opt "--conf spark.kubernetes.container.image=vitalwatch/spark-jobs:0.1.0" jobs/pipeline.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${VITALWATCH_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

master="" deploy="client" profile="${VITALWATCH_PROFILE:-local}" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --master) master="$2"; shift 2 ;;
    --deploy-mode) deploy="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --spark-opt) read -r -a more <<<"$2"; extra+=("${more[@]}"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [options] jobs/<job>.py [args...] (see --help)" >&2; exit 2; }
job="$1"; shift
[ -f "$job" ] || job="$ROOT/$job"
[ -f "$job" ] || { echo "no such job: $1" >&2; exit 2; }

export VITALWATCH_PROFILE="$profile" VITALWATCH_CONF_DIR="$ROOT/conf" VITALWATCH_HOME="$ROOT"
[ -n "$master" ] || master="$("$PY" -c 'from vitalwatch.config import get_settings; print(get_settings().spark.master)')"

# The library as a zip for executors (and the driver in cluster deploy mode).
build="$ROOT/.work/submit"; mkdir -p "$build"
(cd "$ROOT/lib" && rm -f "$build/vitalwatch.zip" && "$PY" -m zipfile -c "$build/vitalwatch.zip" vitalwatch >/dev/null)
files="$(ls "$ROOT"/conf/*.yaml "$ROOT"/conf/spark-packages.txt "$ROOT"/conf/log4j2.properties | paste -sd, -)"

mapfile -d '' conf_args < <("$PY" -m vitalwatch.spark)
sparkhome="${SPARK_HOME:-$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
envconf=()
for k in VITALWATCH_PROFILE; do
  envconf+=(--conf "spark.executorEnv.$k=${!k}" --conf "spark.yarn.appMasterEnv.$k=${!k}"
            --conf "spark.kubernetes.driverEnv.$k=${!k}")
done
if [ "$deploy" = cluster ]; then  # the driver runs remotely: conf/ arrives via --files in its cwd
  envconf+=(--conf spark.yarn.appMasterEnv.VITALWATCH_CONF_DIR=. --conf spark.kubernetes.driverEnv.VITALWATCH_CONF_DIR=.)
fi
export VITALWATCH_SPARK_SUBMIT=1 PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PY}" PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$PY}"
exec "$sparkhome/bin/spark-submit" --master "$master" --deploy-mode "$deploy" --name "vitalwatch-$(basename "$job" .py)" \
  "${conf_args[@]}" "${envconf[@]}" --py-files "$build/vitalwatch.zip" --files "$files" \
  ${extra[@]+"${extra[@]}"} "$job" "$@"
