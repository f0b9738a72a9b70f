"""Spark entry point: the stages off the alert path — the gold tables' topics → gold Delta
tables (gold_lake), then gold/silver Delta → gold/patient_status, MongoDB, Elasticsearch
(lib/vitalwatch/pipeline/gold_lake.py, serving.py); the list is the stage registry's
(:func:`vitalwatch.pipeline.stages.serving_job_stages`).

    ./spark-submit.sh jobs/serve.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app
from vitalwatch.pipeline.stages import serving_job_stages

if __name__ == "__main__":
    app(["pipeline", "--stages", ",".join(serving_job_stages()), *sys.argv[1:]])
