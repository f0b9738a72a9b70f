"""``vitalwatch search``: Elasticsearch index templates and Kibana saved objects."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalwatch.cli._console import console, settings

app = typer.Typer(help="Elasticsearch index templates and Kibana saved objects.", no_args_is_help=True)


@app.command("init")
def search_init() -> None:
    """Install the Elasticsearch index templates (conf/elasticsearch/) and create the indices
    (idempotent, retried; `infra up` runs it too — the pipeline never does)."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import search_init as init

    s = settings()
    init(s, resolve(s, ("elasticsearch",)).es_nodes or "", console.log)


@app.command("kibana-import")
def kibana_import(
    url: Annotated[str, typer.Option(help="Kibana base URL")] = "http://127.0.0.1:5601",
    file: Annotated[str | None, typer.Option(help="saved objects (default dashboards/kibana/vitalwatch.ndjson)")] = None,
) -> None:
    """Import the data views and the dashboard into Kibana (overwrites same ids)."""
    from pathlib import Path

    from vitalwatch.config import project_root
    from vitalwatch.sinks.kibana import import_saved_objects

    path = Path(file) if file else project_root() / "dashboards" / "kibana" / "vitalwatch.ndjson"
    res = import_saved_objects(url, path)
    console.log(f"imported {res.get('successCount', 0)} objects: success={res.get('success')}")
    if not res.get("success"):
        console.print(res.get("errors"))
        raise typer.Exit(1)
