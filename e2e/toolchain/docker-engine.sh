#!/usr/bin/env bash
# Ensures a running Docker engine (idempotent). No registry is reachable here, so the
# engine comes from Debian's docker.io package, and it is started by hand (no systemd
# on these machines) with the runc wrapper as default runtime: the VM's capability
# bounding set lacks CAP_SYS_RESOURCE, and plain runc refuses every privileged
# container (kind nodes) with "unable to apply caps: operation not permitted".
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

need_pkg jq jq
need_pkg dockerd docker.io
need_pkg debootstrap debootstrap
need_pkg iptables iptables
need_pkg python3 python3
need_pkg gcc gcc
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || { need_pkg __none__ libc6-dev; }  # static pause

# The wrapper: ../shared/tools beside the clone (CI layout), else the repo's copy.
# Copied into the cache so the running daemon never depends on a work tree.
wrapper_src="$here/../../../shared/tools/runc-nosysres"
[[ -f "$wrapper_src" ]] || wrapper_src="$here/runc-nosysres"
wrapper="$WAXFLOW_CACHE/bin/runc-nosysres"
mkdir -p "$WAXFLOW_CACHE/bin"
cmp -s "$wrapper_src" "$wrapper" 2>/dev/null || install -m 0755 "$wrapper_src" "$wrapper"

if docker info >/dev/null 2>&1; then
  if docker info --format '{{.DefaultRuntime}}' 2>/dev/null | grep -qx nosysres; then exit 0; fi
  log "a Docker engine already runs without the nosysres runtime; privileged containers may fail"
  exit 0
fi

log "starting dockerd (default runtime: $wrapper)"
mkdir -p /var/log
# setsid: the daemon outlives the calling shell and its process group.
setsid dockerd --add-runtime "nosysres=$wrapper" --default-runtime nosysres \
  >>/var/log/waxflow-dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
log "dockerd did not come up; see /var/log/waxflow-dockerd.log"; tail -20 /var/log/waxflow-dockerd.log >&2
exit 1
