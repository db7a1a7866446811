#!/usr/bin/env bash
# What waxctl's registry tests use: the CNCF Distribution registry (the reference
# implementation of the OCI distribution spec, what Docker Hub and Harbor run), built from
# the Go module proxy and cached under $WAXFLOW_CACHE/registry/<version>/bin (version in
# e2e/toolchain/lib.sh). Idempotent. Prints "registry=<path>".
source "$(dirname "$0")/../e2e/toolchain/lib.sh"
d=$(go_install "registry/$DISTRIBUTION_VERSION" "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION")
[[ -n "$d" ]] || { log "building registry failed"; exit 1; }
echo "registry=$d/registry"
