#!/usr/bin/env bash
# The kafka service's entry point (docker/compose.yaml), in the apache/kafka image, before the
# image's own start (/etc/kafka/docker/run). The broker is secured as the local one
# (lib/vitalwatch/infra/kafka.py): its listener CLIENT is SASL_SSL with SCRAM, also used by the
# broker itself as `admin`; the controller listener is SASL_PLAINTEXT with PLAIN, user
# `controller`, on loopback. Everything but the passwords is in compose's KAFKA_* variables,
# which the image turns into server.properties (KafkaDockerWrapper: KAFKA_ dropped, lower case,
# `_` → `.`, `__` → `_`, `___` → `-`). This script adds:
#
# - the two JAAS lines, built from $VITALWATCH_KAFKA_ADMIN_PASSWORD and
#   $VITALWATCH_KAFKA_CONTROLLER_PASSWORD (the variables are then dropped from the broker's
#   environment);
# - on a new data volume, the storage format WITH the admin's SCRAM credential, which the image's
#   own format step cannot add: `kafka-storage.sh @<file>` with the arguments in a 0600 file on
#   a tmpfs (argparse4j reads them from it), so the password is on no command line; the file is
#   deleted at once. The image's format step then finds the directory formatted and goes on;
# - the health check's client settings (admin over SASL_SSL, checked against the CA), 0600 on
#   the same tmpfs, so the check passes no password on its command line.
#
# A data volume formatted by a broker without authentication (no admin credential) is refused:
# remove the kafka-data volume to start afresh.
set -euo pipefail

kafka_home="${VITALWATCH_KAFKA_HOME:-/opt/kafka}"
image_run="${VITALWATCH_KAFKA_IMAGE_RUN:-/etc/kafka/docker/run}"
run_dir="${VITALWATCH_KAFKA_RUN_DIR:-/run/vitalwatch-kafka}"   # a tmpfs (compose)
iterations="${VITALWATCH_KAFKA_SCRAM_ITERATIONS:-8192}"       # kafka.security.scram_iterations
mech="${KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL:-SCRAM-SHA-512}"
umask 077

die() { echo "kafka start: $*" >&2; exit "${2:-1}"; }

# as lib/vitalwatch/infra/kafka_access.py: nothing a JAAS line or a --add-scram argument must quote
safe='^[A-Za-z0-9_.~+/=-]{16,256}$'
for v in VITALWATCH_KAFKA_ADMIN_PASSWORD VITALWATCH_KAFKA_CONTROLLER_PASSWORD; do
  [ -n "${!v:-}" ] || die "$v is not set (docker/.env)" 2
  [[ ${!v} =~ $safe ]] || die "$v must be 16-256 characters of A-Z a-z 0-9 _ - . ~ + / =" 2
done
admin="$VITALWATCH_KAFKA_ADMIN_PASSWORD" controller="$VITALWATCH_KAFKA_CONTROLLER_PASSWORD"
unset VITALWATCH_KAFKA_ADMIN_PASSWORD VITALWATCH_KAFKA_CONTROLLER_PASSWORD
[[ ${CLUSTER_ID:-} =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{21}$ ]] || die "CLUSTER_ID must be 22 base64url characters" 2
[[ $mech =~ ^SCRAM-SHA-(256|512)$ ]] || die "unsupported inter-broker mechanism $mech" 2
log_dir="${KAFKA_LOG_DIRS:?}"; log_dir="${log_dir%%,*}"
truststore="${KAFKA_LISTENER_NAME_CLIENT_SSL_TRUSTSTORE_LOCATION:?}"
for f in "$truststore" "${KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE_LOCATION:?}"; do
  [ -r "$f" ] || die "cannot read $f (tls-init copies it; run \`vitalwatch infra certs\`, see docker/README.md)"
done

scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin\";"
export "KAFKA_LISTENER_NAME_CLIENT_${mech//-/___}_SASL_JAAS_CONFIG=$scram_login"
export KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"controller\" password=\"$controller\" user_controller=\"$controller\";"
export CLUSTER_ID

mkdir -p "$run_dir"
write_private() {   # write_private FILE < content: 0600 from the first byte, replaced whole
  rm -f "$1.tmp"
  cat >"$1.tmp"
  chmod 0600 "$1.tmp"
  mv -f "$1.tmp" "$1"
}
write_private "$run_dir/client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=$mech
sasl.jaas.config=$scram_login
ssl.truststore.type=PEM
ssl.truststore.location=$truststore
EOF

# server.properties from the environment, as the image's KafkaDockerWrapper writes it
excluded=" KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_OPTS KAFKA_JMX_OPTS KAFKA_JVM_PERFORMANCE_OPTS \
KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_JMX_HOSTNAME "
server_properties() {
  local name key
  for name in $(compgen -e); do
    [[ $name == KAFKA_* ]] || continue
    [[ $excluded == *" $name "* ]] && continue
    key="${name//KAFKA_/}"; key="${key,,}"; key="${key//_/.}"; key="${key//.../-}"; key="${key//../_}"
    printf '%s=%s\n' "$key" "${!name}"
  done
}

marker="$log_dir/.vitalwatch-admin-scram"   # written after our format; Kafka ignores plain files there
if [ -e "$log_dir/meta.properties" ]; then
  [ -e "$marker" ] || die "the Kafka data in $log_dir predates authentication (no admin SCRAM credential): remove the kafka-data volume to start afresh"
else
  props="$run_dir/format.properties" args="$run_dir/format.args"
  trap 'rm -f "$props" "$args" "$props.tmp" "$args.tmp"' EXIT
  server_properties | write_private "$props"
  printf '%s\n' format "--cluster-id=$CLUSTER_ID" -c "$props" --add-scram \
    "$mech=[name=admin,iterations=$iterations,password=$admin]" | write_private "$args"
  "$kafka_home/bin/kafka-storage.sh" "@$args"
  rm -f "$props" "$args"
  trap - EXIT
  : >"$marker"
  echo "kafka start: $log_dir formatted with the admin's $mech credential"
fi
exec "$image_run"
