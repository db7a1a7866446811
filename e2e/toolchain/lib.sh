# shellcheck shell=bash
# Shared settings for the toolchain scripts: versions and the cache outside the repo.
# Every artifact is cached under $WAXFLOW_CACHE keyed by its version, so a second run
# skips the build.
set -euo pipefail
: "${K8S_VERSION:=v1.34.4}"
: "${ETCD_VERSION:=v3.6.16}"
: "${KIND_VERSION:=v0.30.0}"
: "${HELM_VERSION:=v3.19.0}"
: "${KUBECONFORM_VERSION:=v0.7.0}"
: "${DISTRIBUTION_VERSION:=v3.1.2}"
: "${SEAWEEDFS_VERSION:=v0.0.0-20261109003541-7506e5f91cd6}"
: "${WAXFLOW_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/waxflow}"
export K8S_VERSION ETCD_VERSION KIND_VERSION HELM_VERSION KUBECONFORM_VERSION DISTRIBUTION_VERSION SEAWEEDFS_VERSION WAXFLOW_CACHE
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[toolchain] %s\n' "$*" >&2; }

# need_pkg <command> <debian-package>: installs the package when the command is missing.
# Waits for dpkg's lock rather than failing when another run installs at the same time.
_apt_updated=0
need_pkg() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $_apt_updated == 0 ]]; then apt-get -o DPkg::Lock::Timeout=600 update -qq >&2; _apt_updated=1; fi
  log "installing $2 from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$2" >&2
}

# have_all <file ...>: true when every file is there and executable (a cached build).
have_all() { local f; for f in "$@"; do [[ -x "$f" ]] || return 1; done; }

# need_build <dir> <file ...>: true when the files, a build's output in <dir>, are not
# cached yet. Before saying so it takes a lock beside <dir>, held until this shell exits,
# so that runs at once (test files in parallel, two clones) build once: the later ones
# wait, then find the files.
need_build() {
  local dir=$1 fd
  shift
  have_all "$@" && return 1
  mkdir -p "$(dirname "$dir")"
  exec {fd}>>"$dir.lock"
  flock "$fd"
  ! have_all "$@"
}

# Node-image pieces (cluster.sh). Tags must match what kubeadm and kind's manifests ask for:
# `kubeadm config images list --kubernetes-version $K8S_VERSION` and kind's
# pkg/build/nodeimage/const_{cni,storage}.go.
: "${CRICTL_VERSION:=v1.34.0}"
: "${COREDNS_VERSION:=v1.12.1}"
: "${LOCAL_PATH_PROVISIONER_VERSION:=v0.0.30}"
: "${KINDNETD_IMAGE:=docker.io/kindest/kindnetd:v20250512-df8de77b}"
: "${LOCAL_PATH_PROVISIONER_IMAGE:=docker.io/kindest/local-path-provisioner:v20250214-acbabc1a}"
: "${LOCAL_PATH_HELPER_IMAGE:=docker.io/kindest/local-path-helper:v20241212-8ac705d0}"
: "${NODE_IMAGE:=waxflow/kind-node:$K8S_VERSION}"
: "${KIND_CLUSTER_NAME:=waxflow-e2e}"
: "${TEST_BUSYBOX_IMAGE:=waxflow/busybox:e2e}"
# The NetworkPolicy agent (kindnetd embeds it; here it runs beside the kindnetd stand-in).
: "${KUBE_NETWORK_POLICIES_VERSION:=v0.8.0}"
: "${KUBE_NETWORK_POLICIES_IMAGE:=waxflow.local/kube-network-policies:$KUBE_NETWORK_POLICIES_VERSION}"
# The host port of the registry the suite pushes to; nodes pull localhost:<port>/... from it.
: "${E2E_REGISTRY_PORT:=5001}"
export CRICTL_VERSION COREDNS_VERSION LOCAL_PATH_PROVISIONER_VERSION KINDNETD_IMAGE \
  KUBE_NETWORK_POLICIES_VERSION KUBE_NETWORK_POLICIES_IMAGE \
  LOCAL_PATH_PROVISIONER_IMAGE LOCAL_PATH_HELPER_IMAGE NODE_IMAGE KIND_CLUSTER_NAME TEST_BUSYBOX_IMAGE E2E_REGISTRY_PORT

# go_install <cache-subdir> <module/pkg@version>: `go install` into the cache; prints
# the bin folder. Skips when the binary is already there.
go_install() {
  local dir="$WAXFLOW_CACHE/$1/bin" pkg="$2" name
  name=${pkg%@*}; name=${name##*/}
  if ! need_build "$dir" "$dir/$name"; then echo "$dir"; return 0; fi
  log "go install $pkg"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd /tmp && GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w" "$pkg") || return 1
  mkdir -p "$dir"; mv "$dir.tmp/$name" "$dir/$name" && rm -rf "$dir.tmp"
  echo "$dir"
}

# go_build_wrapped <cache-subdir> <module> <version> <package> [ldflags]: like go_install,
# through a throwaway module that requires <module>. Needed where `go install pkg@v`
# fails because the proxy here refuses the module's version list (403), which
# `go install` reads for deprecation notices.
go_build_wrapped() {
  local dir="$WAXFLOW_CACHE/$1/bin" mod="$2" ver="$3" pkg="$4" ld="${5:-}" name work
  name=${pkg##*/}
  if ! need_build "$dir" "$dir/$name"; then echo "$dir"; return 0; fi
  log "go build $pkg ($mod $ver)"
  work=$(mktemp -d)
  printf 'module waxflow.local/wrap\n\ngo 1.24\n\nrequire %s %s\n' "$mod" "$ver" > "$work/go.mod"
  # WRAP_REQUIRE="mod ver, mod ver": raise dependencies (e.g. past pre-releases the
  # checksum database here does not know)
  local IFS=,; for r in ${WRAP_REQUIRE:-}; do echo "require $r" >> "$work/go.mod"; done; unset IFS
  printf 'package main\n\nimport _ "%s"\n' "$pkg" > "$work/tools.go"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$work" && go mod download "$mod" && go get "$pkg@$ver" >/dev/null 2>&1; \
   go build -trimpath -ldflags "-s -w $ld" -o "$dir.tmp/$name" "$pkg") || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  mkdir -p "$dir"; mv "$dir.tmp/$name" "$dir/$name" && rm -rf "$dir.tmp"
  echo "$dir"
}

# Image tags kubeadm asks for; read from the kubeadm binary itself (no network).
kubeadm_images() {
  "$WAXFLOW_CACHE/k8s/$K8S_VERSION/bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null
}
pause_tag() { local t; t=$(kubeadm_images | grep '/pause:'); echo "${t##*:}"; }
