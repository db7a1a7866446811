#!/usr/bin/env bash
# Builds the node pieces that are not Kubernetes binaries, each cached under
# $WAXFLOW_CACHE/<name>/<version>/bin: kind, crictl, coredns, local-path-provisioner,
# kindnetd (waxflow's stand-in, ./kindnetd), kube-network-policies (the NetworkPolicy
# agent), pause (static gcc) and a static busybox (Debian's busybox-static). Usage: components.sh [name ...] (default: all); prints
# "name=path" lines for the binaries.
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kind crictl coredns local-path-provisioner kindnetd kube-network-policies pause busybox)

build_pause() { # static pause from the kubernetes module source, as build/pause/Makefile does
  local tag dir src
  tag=$(pause_tag); dir="$WAXFLOW_CACHE/pause/$tag/bin"
  if have_all "$dir/pause"; then echo "$dir"; return 0; fi
  src=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  log "building pause $tag (static gcc)"
  mkdir -p "$dir"
  gcc -Os -Wall -Werror -static -DVERSION="v$tag-waxflow" -o "$dir/pause.tmp" "$src/build/pause/linux/pause.c"
  strip "$dir/pause.tmp"; mv "$dir/pause.tmp" "$dir/pause"
  echo "$dir"
}

build_busybox() { # Debian's busybox-static, one static binary with every applet
  local dir="$WAXFLOW_CACHE/busybox/bookworm/bin" work
  if have_all "$dir/busybox"; then echo "$dir"; return 0; fi
  log "fetching busybox-static from Debian"
  work=$(mktemp -d)
  (cd "$work" && { apt-get download busybox-static >&2 || { apt-get update -qq >&2 && apt-get download busybox-static >&2; }; } \
    && dpkg-deb -x busybox-static_*.deb x)
  mkdir -p "$dir"; install -m 0755 "$work/x/bin/busybox" "$dir/busybox"; rm -rf "$work"
  echo "$dir"
}

build_kindnetd() { # ./kindnetd/main.go: stdlib + vishvananda/netlink
  local sum dir work
  sum=$(sha256sum "$here/kindnetd/main.go" | cut -c1-12)
  dir="$WAXFLOW_CACHE/kindnetd/$sum/bin"
  if have_all "$dir/kindnetd"; then echo "$dir"; return 0; fi
  log "building kindnetd (waxflow stand-in)"
  work=$(mktemp -d)
  cp "$here/kindnetd/main.go" "$work/"
  printf 'module waxflow.local/kindnetd\n\ngo 1.24\n\nrequire github.com/vishvananda/netlink v1.3.1\n' > "$work/go.mod"
  (cd "$work" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/kindnetd" .) || { rm -rf "$work"; return 1; }
  rm -rf "$work"; mkdir -p "$dir"; mv "$dir.tmp/kindnetd" "$dir/"; rm -rf "$dir.tmp"
  echo "$dir"
}

# The agent's main package is .../cmd: built under the agent's name through a wrapper
# module (the Go proxy here refuses its version list, which `go install` reads).
build_network_policies() {
  local mod=sigs.k8s.io/kube-network-policies name=kube-network-policies dir work
  dir="$WAXFLOW_CACHE/$name/$KUBE_NETWORK_POLICIES_VERSION/bin"
  if have_all "$dir/$name"; then echo "$dir"; return 0; fi
  log "go build $mod/cmd@$KUBE_NETWORK_POLICIES_VERSION"
  work=$(mktemp -d)
  printf 'module waxflow.local/wrap\n\ngo 1.24\n\nrequire %s %s\n' "$mod" "$KUBE_NETWORK_POLICIES_VERSION" > "$work/go.mod"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$work" && go mod download "$mod" && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/$name" "$mod/cmd") \
    || { rm -rf "$work"; return 1; }
  rm -rf "$work"; mkdir -p "$dir"; mv "$dir.tmp/$name" "$dir/$name"; rm -rf "$dir.tmp"
  echo "$dir"
}

for n in "${names[@]}"; do
  case "$n" in
    kind) d=$(go_install "kind/$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION") ;;
    crictl) # The proxy here refuses cri-tools' version list, the checksum database has no
      # entry for it nor for the k8s.io v0.34.0-rc.2 modules it requires: build it
      # through a wrapper that raises those to the released v0.$minor.$patch twins.
      v="v0.${K8S_VERSION#v1.}"; req=""
      for m in api apimachinery client-go cri-api cri-client kubectl kubelet cli-runtime component-base; do
        req+="k8s.io/$m $v,"
      done
      d=$(WRAP_REQUIRE="$req" GONOSUMDB=sigs.k8s.io/cri-tools go_build_wrapped "crictl/$CRICTL_VERSION" sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
        sigs.k8s.io/cri-tools/cmd/crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION") ;;
    coredns) d=$(go_install "coredns/$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION") ;;
    local-path-provisioner)
      d=$(go_install "local-path-provisioner/$LOCAL_PATH_PROVISIONER_VERSION" \
        "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION") ;;
    kindnetd) d=$(build_kindnetd) ;;
    kube-network-policies) d=$(build_network_policies) ;;
    pause) d=$(build_pause) ;;
    busybox) d=$(build_busybox) ;;
    *) log "unknown component $n"; exit 2 ;;
  esac
  [[ -n "$d" ]] || { log "building $n failed"; exit 1; }
  echo "$n=$d/$n"
done
