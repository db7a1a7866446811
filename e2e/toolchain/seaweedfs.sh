#!/usr/bin/env bash
# Builds SeaweedFS's `weed` binary (Apache-2.0) from the Go module proxy: the S3-compatible
# object store that backup and restore tests run against. Only the weed main package, with
# -trimpath and no debug info, to keep the cold build short. Prints the binary's folder.
source "$(dirname "$0")/lib.sh"
out="$WAXFLOW_CACHE/seaweedfs/$SEAWEEDFS_VERSION/bin"
if ! need_build "$out" "$out/weed"; then echo "$out"; exit 0; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
# A throwaway module that requires SeaweedFS: `go install pkg@version` would read the
# module's version list, which the proxy here may refuse.
cat > go.mod <<MOD
module waxflow.local/seaweedfsbuild

go 1.25

require github.com/seaweedfs/seaweedfs $SEAWEEDFS_VERSION
MOD
printf 'package main\n\nimport _ "github.com/seaweedfs/seaweedfs/weed"\n' > tools.go
log "building SeaweedFS weed $SEAWEEDFS_VERSION"
go mod download github.com/seaweedfs/seaweedfs
go get "github.com/seaweedfs/seaweedfs/weed@$SEAWEEDFS_VERSION" >/dev/null
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
go build -trimpath -ldflags "-s -w" -o "$out.tmp/weed" github.com/seaweedfs/seaweedfs/weed
mkdir -p "$out"; mv "$out.tmp/weed" "$out/weed"; rmdir "$out.tmp"
echo "$out"
