"""Benchmark job (docs/requirements.md §7): prints a table per measurement and writes them all as JSON.

    .venv/bin/python jobs/benchmark.py                    # everything, sizes from conf (benchmark:)
    .venv/bin/python jobs/benchmark.py --only parse       # one measurement
    ./spark-submit.sh jobs/benchmark.py --smoke           # tiny sizes: that it runs (CI)

Measurements:
- parse: the silver parser vs Pathling's encoder vs fhir.resources on the same messages;
- scoring: the streaming scorer and engine vs native xgboost ``inplace_predict``;
- memory: the scoring state and process memory per number of patients;
- e2e: readings/s through bronze → silver → gold and every sink on the real local servers
  (started if they are not), event → alert latency at fixed offered loads, and the maximum;
- soak: one load (5,000/s) held for minutes, with the scoring query's backlog sampled throughout:
  sustained, not just absorbed as a burst;
- api: p50/p95/p99 of the REST API's ``GET /api/v1/patients`` over a ward of 10,000 patients and
  of a patient's 24 h observations, as a signed-in clinician over HTTPS with a real HTTP client
  (httpx), the API as ``vitalwatch api`` runs it (:mod:`vitalwatch.bench.api`);
- faults (only with ``--only faults``, about 15 minutes): the applications as separate processes
  while Elasticsearch, mongod, the broker, the webhook receiver, the alert app and the lake app
  fail in turn — event → alert p50/p99 before, during and after each, and the time each store
  took to converge (:mod:`vitalwatch.bench.faults`).
The figures are for the machine it runs on (printed with them); nothing is asserted. The run is
:mod:`vitalwatch.bench.suite`, its tables :mod:`vitalwatch.bench.report`."""

from __future__ import annotations

import typer

from vitalwatch.cli.bench import run

if __name__ == "__main__":
    typer.run(run)
