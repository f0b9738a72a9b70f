"""Elasticsearch: index templates (``conf/elasticsearch/*.json``) and the pipeline's writes
through elasticsearch-spark from ``foreachBatch`` (its native streaming sink breaks on
Spark 3.5, elastic/elasticsearch-hadoop#2210). ``es.mapping.id`` makes every write an
idempotent upsert: a replayed batch rewrites the same documents."""

from __future__ import annotations

import json
from typing import Any

import requests
from pyspark.sql import DataFrame

from vitalwatch.config import Settings, conf_dir
from vitalwatch.infra.elasticsearch import spark_options

INDICES = ("vitals", "risk", "alerts")


def index_name(settings: Settings, kind: str) -> str:
    return f"{settings.elasticsearch.index_prefix}-{kind}"


def templates(settings: Settings) -> dict[str, dict[str, Any]]:
    """Template name → body, with the configured index prefix filled in."""
    out = {}
    for kind in INDICES:
        text = (conf_dir() / "elasticsearch" / f"{kind}.json").read_text()
        out[index_name(settings, kind)] = json.loads(text.replace("{prefix}", settings.elasticsearch.index_prefix))
    return out


def template_fields(settings: Settings) -> dict[str, set[str]]:
    """Index → every mapped field path (``recipients.role`` for object sub-fields)."""
    def walk(props: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in props.items():
            out.add(prefix + k)
            if "properties" in v:
                out |= walk(v["properties"], prefix + k + ".")
        return out

    return {name: walk(t["template"]["mappings"]["properties"]) for name, t in templates(settings).items()}


def base_url(nodes: str) -> str:
    """The REST URL of the first configured node (``host:port`` or a full URL)."""
    first = nodes.split(",")[0]
    return first if first.startswith("http") else f"http://{first}"


def apply_templates(settings: Settings, nodes: str) -> list[str]:
    """PUT each index template and create its index (idempotent)."""
    base = base_url(nodes)
    done = []
    for name, body in templates(settings).items():
        r = requests.put(f"{base}/_index_template/{name}", json=body, timeout=30)
        r.raise_for_status()
        r = requests.put(f"{base}/{name}", timeout=30)
        if r.status_code not in (200, 400) or (r.status_code == 400 and "already_exists" not in r.text):
            r.raise_for_status()
        done.append(name)
    return done


def write(df: DataFrame, settings: Settings, nodes: str, kind: str, id_column: str) -> None:
    """Upsert ``df`` into the ``kind`` index keyed by ``id_column``."""
    fields = template_fields(settings)[index_name(settings, kind)]
    cols = [c for c in df.columns if c in fields]
    (df.select(*cols).write.format("org.elasticsearch.spark.sql").options(**spark_options(nodes))
     .option("es.mapping.id", id_column).option("es.write.operation", "upsert")
     .option("es.batch.write.retry.count", "6").option("es.batch.write.retry.wait", "5s")
     .mode("append").save(index_name(settings, kind)))


def vitals_documents(silver: DataFrame) -> DataFrame:
    """Silver values → ``vitalwatch-vitals`` documents (id: patient, observation, version, vital)."""
    from vitalwatch.pipeline.keys import es_id, vital_key

    return silver.withColumn("doc_id", es_id(vital_key()))
