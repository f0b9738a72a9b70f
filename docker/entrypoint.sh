#!/usr/bin/env bash
# The jobs image's entry point: prepares what the Spark processes need from the local CA, then
# runs the command (spark-submit.sh by default; spark-daemon.sh for the workers in compose).
#
# With VITALWATCH__ELASTICSEARCH__CA_FILE (the CA certificate, mounted read-only) and
# VITALWATCH__ELASTICSEARCH__TRUSTSTORE set, it writes that CA into a Java truststore (JKS) at the
# truststore path: the elasticsearch-spark connector reads trust only from such a store
# (es.net.ssl.truststore.location; lib/vitalwatch/infra/elasticsearch.py spark_options), on the
# driver and on every executor, so each container that runs either builds the same file at the
# same path. The store holds only the public CA certificate: its password guards integrity, not a
# secret, and the connector opens a JKS store without one (integrity is not checked then); a
# random one is used and forgotten, and it never appears on a command line (keytool -storepass:env).
set -euo pipefail
ca="${VITALWATCH__ELASTICSEARCH__CA_FILE:-}" store="${VITALWATCH__ELASTICSEARCH__TRUSTSTORE:-}"
if [ -n "$ca" ] && [ -n "$store" ]; then
  [ -r "$ca" ] || { echo "entrypoint: no CA certificate at $ca (run \`vitalwatch infra certs\`, see docker/README.md)" >&2; exit 1; }
  mkdir -p "$(dirname "$store")"
  tmp="$store.$$.tmp"
  rm -f "$tmp"
  VITALWATCH_TRUSTSTORE_PASS="$(head -c 24 /dev/urandom | base64)" \
    keytool -importcert -noprompt -alias vitalwatch-ca -file "$ca" -keystore "$tmp" -storetype JKS \
            -storepass:env VITALWATCH_TRUSTSTORE_PASS >/dev/null
  mv -f "$tmp" "$store"
fi
[ $# -ge 1 ] || { echo "usage: $0 <command> [args...]" >&2; exit 2; }
exec "$@"
