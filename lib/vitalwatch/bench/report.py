"""The benchmarks' tables: one writer for Markdown and one for rich tables, and each measurement's
table built from its results. Rendering only: nothing here measures, and what a table shows is
also in the job's JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

MIB = 2**20


def console_for() -> Console:
    """The benchmarks' console: off a terminal 170 columns wide, so a log keeps the tables whole."""
    return Console() if sys.stdout.isatty() else Console(width=170)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: a header row, its ``|---|`` rule and one line per row (cells as given)."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows) + "\n"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], left: Sequence[str] = ()) -> Table:
    """A rich table: the ``left`` columns left-justified (names), every other one right (figures)."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c in left else "right")
    for r in rows:
        t.add_row(*r)
    return t


def parse_table(runs: Sequence, repeat: int) -> Table:
    """The parsers side by side (:class:`vitalwatch.bench.parsers.ParseRun`), the silver parser first."""
    silver = runs[0]
    return table(f"FHIR parsing, {silver.messages:,} messages (best of {repeat})",
                 ("engine", "observations", "seconds", "messages/s", "silver ÷ this"),
                 ((f"{r.engine} ({r.version})", f"{r.observations:,}", f"{r.best:.2f}", f"{r.messages_per_s:,.0f}",
                   f"{silver.messages_per_s / r.messages_per_s:.2f}×") for r in runs), left=("engine",))


def parse_sinks_table(res: dict) -> Table:
    """The silver parser into ``noop`` and into Delta (:func:`vitalwatch.bench.parsers.silver_sinks`)."""
    rows = ((name, f"{sec:.2f}", f"{res['messages'] / sec:,.0f}", f"{res['values'] / sec:,.0f}")
            for name, sec in (("noop (parse only)", res["noop_s"]), ("Delta (parse + write)", res["delta_s"])))
    return table(f"silver parser, {res['messages']} messages → {res['values']} values, master {res['master']}, "
                 f"best of {res['repeat']}", ("sink", "seconds", "messages/s", "values/s"), rows, left=("sink",))


def scoring_table(model: str, runs: Sequence, repeat: int) -> Table:
    """The scorer and the streaming engine against native ``inplace_predict``."""
    return table(f"scoring, model {model} (best of {repeat})",
                 ("", "vectors", "seconds", "vectors/s", "native seconds", "÷ native"),
                 ((f"({i})", f"{r.vectors:,}", f"{r.seconds:.4f}", f"{r.vectors / r.seconds:,.0f}",
                   f"{r.native_seconds:.4f}", f"{r.ratio:.2f}×") for i, r in enumerate(runs, 1)), left=("",))


def memory_table(runs: list[dict], readings: int) -> Table:
    """The scoring state's size per number of patients (a failed run shows its error)."""
    def row(r: dict) -> tuple[str, ...]:
        if "error" in r:
            return (f"{r['patients']:,}", "failed", r["error"][:60], "", "", "", "")
        return (f"{r['patients']:,}", f"{r['seconds']:.1f}", f"{r['checkpoint_state_bytes'] / MIB:,.1f} MiB",
                f"{r['state_bytes_per_patient'] / 1024:,.1f} KiB", f"{(r['state_memory_bytes'] or 0) / MIB:,.1f} MiB",
                f"{r['jvm_rss_before'] / MIB:,.0f} → {r['jvm_rss_peak'] / MIB:,.0f}",
                f"{r['python_workers_rss_peak'] / MIB:,.0f} MiB")

    return table(f"scoring state, {runs[0]['state_buckets']} buckets, {readings} readings a patient",
                 ("patients", "seconds", "state on disk", "a patient", "state memory", "JVM RSS (MiB)", "Python peak"),
                 map(row, runs))


def api_table(run) -> Table:
    """The REST API's latency per endpoint (:class:`vitalwatch.bench.api` run)."""
    return table(f"REST API over {'HTTPS' if run.tls else 'HTTP'}, a ward of {run.patients:,} patients, "
                 f"one client, one request at a time (after {run.warmup} warm-up requests)",
                 ("endpoint", "requests", "p50 ms", "p95 ms", "p99 ms", "mean ms", "first ms", "items", "total"),
                 ((e.endpoint, f"{e.requests:,}", f"{e.p50_ms:.1f}", f"{e.p95_ms:.1f}", f"{e.p99_ms:.1f}",
                   f"{e.mean_ms:.1f}", f"{e.cold_ms:.0f}", f"{e.items:,}", f"{e.total:,}") for e in run.endpoints),
                 left=("endpoint",))


def faults_table(out: dict) -> Table:
    """Event → alert latency around each fault and each store's time to converge."""
    def pq(q: dict) -> str:
        return f"{q['p50']:.1f} / {q['p99']:.1f}" if q else "–"

    def row(r: dict) -> tuple[str, ...]:
        cv = r["converge_s"]
        return (r["fault"], pq(r["before"]), pq(r["during"]), pq(r["after"]), str(r["alerts_during"]),
                *[("–" if st not in cv else "never" if cv[st] is None else f"{cv[st]:.0f}")
                  for st in ("delta", "mongo", "elasticsearch", "webhook")])

    return table("faults: event → alert on the alert topic (s), and seconds until each store held every "
                 "alert raised before the fault ended",
                 ("fault", "before p50/p99", "during p50/p99", "after p50/p99", "alerts during",
                  "Delta", "MongoDB", "Elasticsearch", "webhook"), map(row, out["faults"]), left=("fault",))


def faults_final(out: dict) -> str:
    return f"final: {json.dumps(out['final'], default=str)}"


def _offered(r) -> str:
    return "max" if not r.offered_per_s else f"{r.offered_per_s:,.0f}"


def _e2e_row(r) -> tuple[str, ...]:
    lat, late = r.latency_s, r.latency_second_half_s
    end = r.gold_backlog_end if r.gold_backlog_end is not None else "—"
    peak = r.gold_backlog_max if r.gold_backlog_max is not None else "—"
    growth = "" if r.gold_backlog_growth is None else f" (×{r.gold_backlog_growth:.2f})"
    return (_offered(r), f"{r.readings:,}", f"{r.patients:,}", f"{r.sent_per_s:,.0f}",
            "—" if r.drained_seconds is None else f"{r.drained_seconds:.0f} s", "yes" if r.sustained else "no",
            f"{r.bp_readings_scored:,}", "/".join(f"{v:,}" for v in r.stores.values()), f"{end} / {peak}{growth}",
            f"{r.alerts}", *(f"{lat[k]:.1f}" if k in lat else "—" for k in ("p50", "p95", "p99")),
            f"{late['p99']:.1f}" if "p99" in late else "—")


def e2e_tables(title: str, runs: Sequence) -> tuple[Table, Table]:
    """The loads end to end, and the share of wall time each query spent in batches."""
    loads = table(title, ("offered/s", "readings", "patients", "sent/s", "drained after", "sustained", "BP scored",
                          "Delta/Mongo/ES", "scoring backlog end / max (growth)", "alerts", "p50 s", "p95 s",
                          "p99 s", "2nd half p99 s"), map(_e2e_row, runs))
    names = sorted({q for r in runs for q in r.busy})
    busy = table("share of wall time each query spent in batches while the load was sent", ("offered/s", *names),
                 ((_offered(r), *(f"{r.busy[q]:.0%}" if q in r.busy else "—" for q in names)) for r in runs))
    return loads, busy


def e2e_log_line(rate: float, r) -> str:
    """One load's outcome as it finishes."""
    return (f"offered {rate or 'max'}: sent {r.sent_per_s:,.0f}/s, drained "
            f"{'never' if r.drained_seconds is None else f'{r.drained_seconds:.0f} s'} after, "
            f"scoring backlog end/max {r.gold_backlog_end}/{r.gold_backlog_max} "
            f"(growth {r.gold_backlog_growth}), latency {r.latency_s}")
