"""Elasticsearch security for docker/compose.yaml (service ``es-security-init``), idempotent: every
``docker compose up`` runs it again and it converges to the same state.

- ``kibana_system`` (Kibana's own connection to Elasticsearch) gets its password;
- role ``vitalwatch_writer``: what the pipeline and ``vitalwatch search init`` do on
  ``<prefix>-*`` and nothing more — install index templates, create the indices, index/update
  documents (the pipeline's upserts), refresh, read their mappings; never read documents, never
  delete one;
- role ``vitalwatch_reader``: read-only ``<prefix>-*`` and read-only Kibana (default space), for
  clinicians and analysts, who sign in to Kibana as ``vitalwatch_kibana_reader``;
- ``vitalwatch_kibana_setup`` (``kibana_admin``): kibana-init's import of the saved objects;
- the pipeline's API key, limited to ``vitalwatch_writer``, in a file on the ``es-api-key``
  volume that only search-init and pipeline-serving mount. A key that still authenticates and
  still carries those privileges is kept; otherwise (or with ``--rotate``) a new one is written
  (atomically, 0400) and every other active key of that name is invalidated. The pipeline re-reads
  the file on each write, so a rotated key is picked up at its next batch.

Secrets come from the environment (docker/env.example), never from argv; nothing secret is
printed. Run as ``python security_init.py [--rotate]``."""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path
from typing import Any

KEY_NAME = "vitalwatch-pipeline"
READER_USER = "vitalwatch_kibana_reader"
SETUP_USER = "vitalwatch_kibana_setup"
# the environment variable holding each user's password
PASSWORD_ENV = {"elastic": "VITALWATCH_ELASTIC_PASSWORD", "kibana_system": "VITALWATCH_KIBANA_SYSTEM_PASSWORD",
                READER_USER: "VITALWATCH_KIBANA_READER_PASSWORD", SETUP_USER: "VITALWATCH_KIBANA_SETUP_PASSWORD"}


def roles(prefix: str) -> dict[str, dict[str, Any]]:
    """The two roles, for indices ``<prefix>-*`` (elasticsearch.index_prefix)."""
    indices = [f"{prefix}-*"]
    return {
        "vitalwatch_writer": {
            # monitor: elasticsearch-spark reads the cluster's version (GET /) and health;
            # manage_index_templates: `vitalwatch search init`
            "cluster": ["monitor", "manage_index_templates"],
            "indices": [{"names": indices,
                         # refresh (maintenance): elasticsearch-spark's es.batch.write.refresh
                         "privileges": ["create_index", "index", "maintenance", "view_index_metadata"]}],
        },
        "vitalwatch_reader": {
            "cluster": [],
            "indices": [{"names": indices, "privileges": ["read", "view_index_metadata"]}],
            # Kibana's "read" base privilege in its default space: dashboards, Discover, nothing editable
            "applications": [{"application": "kibana-.kibana", "privileges": ["space_read"],
                              "resources": ["space:default"]}],
        },
    }


def users() -> dict[str, dict[str, Any]]:
    return {
        READER_USER: {"roles": ["vitalwatch_reader"], "full_name": "vitalwatch clinicians and analysts (read-only)"},
        SETUP_USER: {"roles": ["kibana_admin"], "full_name": "vitalwatch kibana-init (saved objects)"},
    }


class Es:
    """REST calls as ``elastic`` (or, with ``api_key``, as that key) over HTTPS checked against the CA."""

    def __init__(self, url: str, ca_file: str, password: str, http: Any = None) -> None:
        if http is None:
            import requests

            http = requests.Session()
        self.url, self.ca_file, self.password, self.http = url.rstrip("/"), ca_file, password, http

    def call(self, method: str, path: str, body: Any = None, api_key: str | None = None,
             ok: tuple[int, ...] = (200,)) -> Any:
        kw: dict[str, Any] = {"verify": self.ca_file, "timeout": 30}
        if api_key:
            kw["headers"] = {"Authorization": f"ApiKey {api_key}"}
        else:
            kw["auth"] = ("elastic", self.password)
        if body is not None:
            kw["json"] = body
        r = self.http.request(method, f"{self.url}{path}", **kw)
        if r.status_code not in ok:  # the body names the failure; it never echoes a password
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code}: {r.text[:300]}")
        return (r.status_code, r.json() if r.content else {})


def wait_ready(es: Es, attempts: int = 60, wait_s: float = 5.0) -> None:
    for attempt in range(1, attempts + 1):
        try:
            es.call("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s")
            return
        except Exception as e:  # connection refused, 503, TLS not up yet
            if attempt == attempts:
                if "certificate" in str(e).lower() or "hostname" in str(e).lower():
                    raise RuntimeError(f"{e}\nthe certificates may predate the compose host names: "
                                       "run `vitalwatch infra certs --rotate` (docker/README.md)") from e
                raise
            time.sleep(wait_s)


def _privileges(descriptor: dict[str, Any]) -> tuple:
    """What a role descriptor grants, in a form Elasticsearch's normalisation does not change."""
    return (frozenset(descriptor.get("cluster", [])),
            frozenset((frozenset(i["names"]), frozenset(i["privileges"])) for i in descriptor.get("indices", [])))


def _key_id(encoded: str) -> str:
    return base64.b64decode(encoded).decode().split(":", 1)[0]


def _write_key(path: Path, encoded: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as f:
        f.write(encoded + "\n")
    os.replace(tmp, path)


def ensure_api_key(es: Es, key_file: Path, writer: dict[str, Any], rotate: bool = False) -> str:
    """Keep the pipeline's key if it still works with the writer's privileges, else make a new one;
    invalidate every other active key of that name. Returns "kept" or "created"."""
    current = key_file.read_text().strip() if key_file.is_file() else ""
    keep = False
    if current and not rotate:
        status, who = es.call("GET", "/_security/_authenticate", api_key=current, ok=(200, 401))
        if status == 200 and who.get("api_key", {}).get("name") == KEY_NAME:
            _, info = es.call("GET", f"/_security/api_key?id={_key_id(current)}")
            granted = (info.get("api_keys") or [{}])[0].get("role_descriptors", {})
            keep = _privileges(granted.get("vitalwatch_writer", {})) == _privileges(writer)
    if not keep:
        _, made = es.call("POST", "/_security/api_key", {
            "name": KEY_NAME, "role_descriptors": {"vitalwatch_writer": writer},
            "metadata": {"application": "vitalwatch", "use": "pipeline writes to Elasticsearch"}})
        current = made["encoded"]
        _write_key(key_file, current)
    _, listed = es.call("GET", f"/_security/api_key?name={KEY_NAME}")
    stale = [k["id"] for k in listed.get("api_keys", [])
             if not k.get("invalidated") and k["id"] != _key_id(current)]
    if stale:
        es.call("DELETE", "/_security/api_key", {"ids": stale})
    return "kept" if keep else "created"


def setup(es: Es, env: dict[str, str], prefix: str, key_file: Path, rotate: bool = False,
          say: Any = print) -> None:
    es.call("POST", "/_security/user/kibana_system/_password", {"password": env[PASSWORD_ENV["kibana_system"]]})
    say("kibana_system: password set")
    defined = roles(prefix)
    for name, body in defined.items():
        es.call("PUT", f"/_security/role/{name}", body)
        say(f"role {name}: {prefix}-* {body['indices'][0]['privileges']}")
    for name, body in users().items():
        es.call("PUT", f"/_security/user/{name}", {**body, "password": env[PASSWORD_ENV[name]]})
        say(f"user {name}: {', '.join(body['roles'])}")
    say(f"API key {KEY_NAME}: {ensure_api_key(es, key_file, defined['vitalwatch_writer'], rotate)} ({key_file})")


def _required(env: dict[str, str], names: list[str]) -> None:
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise SystemExit(f"es-security-init: set {', '.join(missing)} (docker/env.example)")


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    _required(env, [*PASSWORD_ENV.values(), "ES_URL", "ES_CA_FILE", "ES_API_KEY_FILE"])
    from vitalwatch.config import Settings

    prefix = Settings().elasticsearch.index_prefix
    es = Es(env["ES_URL"], env["ES_CA_FILE"], env[PASSWORD_ENV["elastic"]])
    wait_ready(es)
    setup(es, env, prefix, Path(env["ES_API_KEY_FILE"]), rotate="--rotate" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
