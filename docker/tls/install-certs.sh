#!/usr/bin/env bash
# tls-init (docker/compose.yaml): copies servers' certificates and keys from the local CA's
# directory into the volumes the servers read them from, owned by the user each server runs as.
#
#   install-certs.sh <source dir> <dest dir>=<uid>:<gid>=<file>[,<file>...] ...
#
# The keys `vitalwatch infra certs` writes are 0600 and owned by whoever ran it on the host,
# which is not the user inside the server images; so this runs as root in a container without
# network, with only the listed files mounted (never the CA's key), and writes each destination's
# files 0400 (directory 0500) for its owner alone. Each file is written under a temporary name
# and renamed, so a server that reloads its certificates (Elasticsearch watches them) never
# reads half of one. Every `docker compose up` runs it again: after `infra certs --rotate` an
# `up -d` hands the servers the new set.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 <source dir> <dest>=<uid>:<gid>=<file,...> ..." >&2; exit 2; }
src="$1"; shift
for spec in "$@"; do
  IFS='=' read -r dest owner files <<<"$spec"
  [ -n "$dest" ] && [ -n "$owner" ] && [ -n "$files" ] || { echo "tls-init: bad spec $spec" >&2; exit 2; }
  IFS=',' read -r -a names <<<"$files"
  for f in "${names[@]}"; do
    case "$f" in */*|ca.key) echo "tls-init: refusing $f" >&2; exit 2 ;; esac
    [ -s "$src/$f" ] || { echo "tls-init: $src/$f is missing or empty: run \`vitalwatch infra certs\` (docker/README.md)" >&2; exit 1; }
  done
  mkdir -p "$dest"
  for f in "${names[@]}"; do
    install -m 0400 -o "${owner%%:*}" -g "${owner##*:}" "$src/$f" "$dest/.$f.tmp"
    mv -f "$dest/.$f.tmp" "$dest/$f"
  done
  chown "$owner" "$dest"
  chmod 0500 "$dest"
  echo "tls-init: ${names[*]} -> $dest (owner $owner)"
done
