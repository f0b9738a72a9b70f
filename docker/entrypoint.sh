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
# With VITALWATCH__MONGO__CA_FILE and VITALWATCH__MONGO__TRUSTSTORE set, the same for MongoDB's
# requireTLS: mongo-spark-connector's Java driver ignores the URI's tlsCAFile and trusts the JVM's
# default trust store, so lib/vitalwatch/spark.py points javax.net.ssl.trustStore of the driver and
# of every executor at this path. That store replaces the JDK's, and the same JVM fetches its
# packages from Maven Central over HTTPS: it holds the JDK's CAs (cacerts, whose well-known
# password is "changeit") plus ours. Built the same way (JKS, random password used and forgotten).
mca="${VITALWATCH__MONGO__CA_FILE:-}" mstore="${VITALWATCH__MONGO__TRUSTSTORE:-}"
if [ -n "$mca" ] && [ -n "$mstore" ]; then
  [ -r "$mca" ] || { echo "entrypoint: no CA certificate at $mca (run \`vitalwatch infra certs\`, see docker/README.md)" >&2; exit 1; }
  jhome="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
  mkdir -p "$(dirname "$mstore")"
  tmp="$mstore.$$.tmp"
  rm -f "$tmp"
  (
    export VITALWATCH_TRUSTSTORE_PASS="$(head -c 24 /dev/urandom | base64)" VITALWATCH_CACERTS_PASS=changeit
    out="$(keytool -importkeystore -noprompt -srckeystore "$jhome/lib/security/cacerts" -srcstorepass:env VITALWATCH_CACERTS_PASS \
                   -destkeystore "$tmp" -deststoretype JKS -deststorepass:env VITALWATCH_TRUSTSTORE_PASS 2>&1)" \
      || { echo "entrypoint: copying the JDK's CAs into $mstore failed: $out" >&2; exit 1; }
    keytool -importcert -noprompt -alias vitalwatch-ca -file "$mca" -keystore "$tmp" -storetype JKS \
            -storepass:env VITALWATCH_TRUSTSTORE_PASS >/dev/null
  )
  mv -f "$tmp" "$mstore"
fi
[ $# -ge 1 ] || { echo "usage: $0 <command> [args...]" >&2; exit 2; }
exec "$@"
