#!/usr/bin/env bash
# npm run e2e: the kind cluster (built from package registries, cached), the waxflow
# images (built without a daemon, cached by content), the controller image loaded into
# the cluster, the Kafka broker image (kafka.e2e.test.ts loads it) and the SeaweedFS image
# (backup.e2e.test.ts loads it), then every e2e/*.e2e.test.ts (scenarios, security, top,
# gitops, kafka, backup, ...). Dataflow images are built and loaded by `waxctl df deploy`
# itself, as a user's would be.
#   E2E_REUSE_CLUSTER=true  keep a running, verified cluster instead of recreating it
#   E2E_KEEP=true           leave the scenarios' namespace in place for a look afterwards
source "$(dirname "$0")/toolchain/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
t0=$(date +%s)
step() { log "$1 ($(( $(date +%s) - t0 ))s)"; }

kind=$("$here/toolchain/components.sh" kind); kind=${kind#kind=}
export PATH="$(dirname "$kind"):$PATH"
export KUBECONFIG="$WAXFLOW_CACHE/kind/$KIND_CLUSTER_NAME.kubeconfig"

if [[ ${E2E_REUSE_CLUSTER:-false} == true ]] && "$kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
  "$here/toolchain/cluster.sh" verify
else
  "$here/toolchain/cluster.sh" up
fi
step "cluster ready"

cd "$root"
# The registry scenario 9 pushes to (idempotent, cached by version).
bash "$root/cli/install-tools.sh" >/dev/null
images=$(npm run -s images -- --json)
# The reference first: the archive's path, last, may hold spaces.
read -r WAXFLOW_CONTROLLER_IMAGE controller_archive < <(node -p \
  'const { controller: c } = JSON.parse(process.argv[1]); `${c.reference} ${c.archive}`' "$images")
read -r WAXFLOW_RUNTIME_IMAGE WAXFLOW_RUNTIME_ARCHIVE < <(node -p \
  'const { runtime: r } = JSON.parse(process.argv[1]); `${r.reference} ${r.archive}`' "$images")
# The Kafka broker of kafka.e2e.test.ts (cached by content; that test loads it into the node).
kafka_image=$(npm run -s images:kafka -- --json)
read -r WAXFLOW_KAFKA_IMAGE WAXFLOW_KAFKA_ARCHIVE < <(node -p \
  'const k = JSON.parse(process.argv[1]); `${k.reference} ${k.archive}`' "$kafka_image")
# The S3-compatible store of backup.e2e.test.ts: the toolchain's `weed` (built from the Go
# module proxy when missing, cached by version) on the runtime's OS layer; that test loads it.
seaweedfs_image=$(npm run -s images:seaweedfs -- --json)
read -r WAXFLOW_SEAWEEDFS_IMAGE WAXFLOW_SEAWEEDFS_ARCHIVE < <(node -p \
  'const s = JSON.parse(process.argv[1]); `${s.reference} ${s.archive}`' "$seaweedfs_image")
export WAXFLOW_CONTROLLER_IMAGE WAXFLOW_RUNTIME_IMAGE WAXFLOW_RUNTIME_ARCHIVE WAXFLOW_KAFKA_IMAGE WAXFLOW_KAFKA_ARCHIVE \
  WAXFLOW_SEAWEEDFS_IMAGE WAXFLOW_SEAWEEDFS_ARCHIVE
step "images built: $WAXFLOW_CONTROLLER_IMAGE $WAXFLOW_KAFKA_IMAGE $WAXFLOW_SEAWEEDFS_IMAGE"
"$kind" load image-archive "$controller_archive" --name "$KIND_CLUSTER_NAME"
step "controller image loaded"

npx vitest run --config e2e/vitest.config.ts "$@"
step "e2e passed"
