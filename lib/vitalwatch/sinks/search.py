"""Elasticsearch: index templates (``conf/elasticsearch/*.json``) and the pipeline's writes
through elasticsearch-spark from ``foreachBatch`` (its native streaming sink breaks on
Spark 3.5, elastic/elasticsearch-hadoop#2210). ``es.mapping.id`` makes every write an
idempotent upsert: a replayed batch rewrites the same documents. A document Elasticsearch
refuses for good (mapping conflict, id too long, too large) goes to ``gold/dead_letter`` and the
rest of the batch is written (:mod:`vitalwatch.sinks.dead_letter`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import requests
from pyspark.sql import DataFrame

from vitalwatch.config import Settings, conf_dir
from vitalwatch.infra.elasticsearch import spark_options
from vitalwatch.sinks.dead_letter import (
    ES_MAX_DOCUMENT_BYTES,
    es_sink,
    es_write,
    write_or_dead_letter,
)

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
    """PUT each index template and create its index (idempotent); over HTTPS checked against
    ``elasticsearch.ca_file`` and with the API key when those are configured."""
    options = spark_options(nodes, settings.elasticsearch)
    base = rest_base(nodes, options)
    kw: dict[str, Any] = {"headers": rest_headers(options), "verify": settings.elasticsearch.ca_file or True,
                          "timeout": 30}
    done = []
    for name, body in templates(settings).items():
        r = requests.put(f"{base}/_index_template/{name}", json=body, **kw)
        r.raise_for_status()
        r = requests.put(f"{base}/{name}", **kw)
        if r.status_code not in (200, 400) or (r.status_code == 400 and "already_exists" not in r.text):
            r.raise_for_status()
        done.append(name)
    return done


def rest_base(nodes: str, options: Mapping[str, str]) -> str:
    """The REST URL elasticsearch-spark's ``options`` point at (https when ``es.net.ssl``)."""
    first = nodes.split(",")[0]
    if first.startswith("http"):
        return first
    return f"{'https' if str(options.get('es.net.ssl', 'false')).lower() == 'true' else 'http'}://{first}"


def rest_headers(options: Mapping[str, str]) -> dict[str, str]:
    """The credentials elasticsearch-spark's ``options`` carry, as HTTP headers."""
    headers = {}
    if user := options.get("es.net.http.auth.user"):
        token = base64.b64encode(f"{user}:{options.get('es.net.http.auth.pass', '')}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if auth := options.get("es.net.http.header.Authorization"):
        headers["Authorization"] = auth
    return headers


def write(df: DataFrame, settings: Settings, nodes: str, kind: str, id_column: str,
          max_document_bytes: int = ES_MAX_DOCUMENT_BYTES) -> int:
    """Upsert ``df`` into the ``kind`` index keyed by ``id_column``; the rows Elasticsearch
    refuses for good go to ``gold/dead_letter`` (how many is returned)."""
    from vitalwatch.sinks.isolate import es_isolate

    index = index_name(settings, kind)
    fields = template_fields(settings)[index]
    options = spark_options(nodes, settings.elasticsearch)

    def connector(docs: DataFrame) -> None:
        (docs.write.format("org.elasticsearch.spark.sql").options(**options)
         .option("es.mapping.id", id_column).option("es.write.operation", "upsert")
         .option("es.batch.write.retry.count", "6").option("es.batch.write.retry.wait", "5s")
         .mode("append").save(index))

    def isolate(docs: DataFrame) -> list:
        return es_isolate(docs, rest_base(nodes, options), rest_headers(options), index, id_column, es_sink(index),
                          settings.gold.dead_letter_payload_bytes)

    docs = df.select(*[c for c in df.columns if c in fields])
    return write_or_dead_letter(docs, settings, es_write(connector, isolate, index, id_column, max_document_bytes))


def vitals_documents(silver: DataFrame) -> DataFrame:
    """Silver values → ``vitalwatch-vitals`` documents (id: patient, observation, version, vital)."""
    from vitalwatch.pipeline.keys import es_id, vital_key

    return silver.withColumn("doc_id", es_id(vital_key()))
