"""kibana-init (docker/compose.yaml): import the data views and the dashboard
(dashboards/kibana/vitalwatch.ndjson) into Kibana as the setup user (``kibana_admin``, created by
es-security-init), after checking that Kibana refuses an anonymous request — with security on,
every user signs in. Idempotent (the import overwrites the same ids). The password comes from
the environment (VITALWATCH_KIBANA_SETUP_PASSWORD), never from argv."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def saved_objects_file() -> Path:
    from vitalwatch.config import project_root

    return project_root() / "dashboards" / "kibana" / "vitalwatch.ndjson"


def import_saved_objects(url: str, user: str, password: str, path: Path, http: Any = None) -> dict[str, Any]:
    if http is None:
        import requests as http
    url = url.rstrip("/")
    anonymous = http.get(f"{url}/api/status", timeout=30)
    if anonymous.status_code != 401:
        raise RuntimeError(f"Kibana answered an anonymous request with HTTP {anonymous.status_code}, "
                           "not 401: its security is off")
    with path.open("rb") as f:
        r = http.post(f"{url}/api/saved_objects/_import", params={"overwrite": "true"},
                      headers={"kbn-xsrf": "vitalwatch"}, files={"file": (path.name, f, "application/ndjson")},
                      auth=(user, password), timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"saved objects import: HTTP {r.status_code}: {r.text[:300]}")
    res = r.json()
    if not res.get("success"):
        raise RuntimeError(f"saved objects import failed: {res.get('errors')}")
    return res


def main() -> int:
    password = os.environ.get("VITALWATCH_KIBANA_SETUP_PASSWORD")
    if not password:
        raise SystemExit("kibana-init: set VITALWATCH_KIBANA_SETUP_PASSWORD (docker/env.example)")
    res = import_saved_objects(os.environ.get("KIBANA_URL", "http://kibana:5601"),
                               os.environ.get("KIBANA_SETUP_USER", "vitalwatch_kibana_setup"), password,
                               saved_objects_file())
    print(f"kibana-init: imported {res.get('successCount', 0)} saved objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
