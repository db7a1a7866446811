# Shared settings for the toolchain scripts: versions and the cache outside the repo.
# Every artifact is cached under $WAXFLOW_CACHE keyed by its version, so a second run
# skips the build.
set -euo pipefail
: "${K8S_VERSION:=v1.34.4}"
: "${ETCD_VERSION:=v3.6.16}"
: "${KIND_VERSION:=v0.30.0}"
: "${HELM_VERSION:=v3.19.0}"
: "${KUBECONFORM_VERSION:=v0.7.0}"
: "${WAXFLOW_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/waxflow}"
export K8S_VERSION ETCD_VERSION KIND_VERSION HELM_VERSION KUBECONFORM_VERSION WAXFLOW_CACHE
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[toolchain] %s\n' "$*" >&2; }

# Runs "$@" only when every named file is missing; keeps the cache consistent by
# building into a temporary folder and moving it into place at the end.
have_all() { local f; for f in "$@"; do [[ -x "$f" ]] || return 1; done; }
