#!/usr/bin/env bash
# helm for the chart's tests, `go install`ed from the Go module proxy and cached under
# $WAXFLOW_CACHE/helm/<version>/bin (version in e2e/toolchain/lib.sh). Idempotent: a cached
# binary is reused. Prints "helm=<path>". The rendered manifests are validated against a
# real kube-apiserver (server-side dry run, cli/test/install.int.test.ts), not kubeconform:
# its schemas come from GitHub, which these machines cannot reach.
source "$(dirname "$0")/../e2e/toolchain/lib.sh"

# helm with the ldflags of its Makefile: without them it reports version "v3.19" and
# renders for Kubernetes v1.20 (.Capabilities.KubeVersion), which fails the chart's kubeVersion.
build_helm() {
  local dir="$WAXFLOW_CACHE/helm/$HELM_VERSION/bin" gomod minor ld
  if ! need_build "$dir" "$dir/helm"; then echo "$dir"; return 0; fi
  gomod=$(cd /tmp && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  minor=$(sed -n 's/^\s*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in pkg/chartutil pkg/lint/rules; do
    ld+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (Kubernetes 1.$minor)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd /tmp && GOBIN="$dir.tmp" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") || return 1
  mkdir -p "$dir"; mv "$dir.tmp/helm" "$dir/helm" && rm -rf "$dir.tmp"
  echo "$dir"
}

d=$(build_helm)
[[ -n "$d" ]] || { log "building helm failed"; exit 1; }
echo "helm=$d/helm"
