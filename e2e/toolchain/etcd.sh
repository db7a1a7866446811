#!/usr/bin/env bash
# Builds etcd from the Go module proxy: a two-line main around etcdmain. Prints the
# binary's folder.
source "$(dirname "$0")/lib.sh"
out="$WAXFLOW_CACHE/etcd/$ETCD_VERSION/bin"
if ! need_build "$out" "$out/etcd"; then echo "$out"; exit 0; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module waxflow.local/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
log "building etcd $ETCD_VERSION"
go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .
mkdir -p "$out"; mv "$out.tmp/etcd" "$out/etcd"; rmdir "$out.tmp"
echo "$out"
