#!/usr/bin/env bash
# Builds Kubernetes binaries from the Go module proxy (no release downloads are
# reachable here). Usage: k8s-binaries.sh [binary ...]; prints the bin folder.
# The wrapper module requires k8s.io/kubernetes and pins each staging module
# (k8s.io/api, ...) to its published v0.x twin, which is what the monorepo's
# ./staging replace directives point at.
source "$(dirname "$0")/lib.sh"
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(kube-apiserver kube-controller-manager)
out="$WAXFLOW_CACHE/k8s/$K8S_VERSION/bin"
paths=(); for b in "${bins[@]}"; do paths+=("$out/$b"); done
if ! need_build "$out" "${paths[@]}"; then echo "$out"; exit 0; fi

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}; patch=${K8S_VERSION##*.}
staging_version="v0.$minor.$patch"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
log "resolving k8s.io/kubernetes@$K8S_VERSION"
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module waxflow.local/k8sbuild"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
commit=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Hash": "h1:\(.\{0,12\}\).*/\1/p' | head -1)
ld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=${commit:-0000000} -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$out.tmp"
pkgs=(); for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
log "building ${bins[*]} $K8S_VERSION (cold: tens of minutes on 2 cores)"
go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp/" "${pkgs[@]}"
mkdir -p "$out"; mv "$out.tmp"/* "$out/"; rmdir "$out.tmp"
echo "$out"
