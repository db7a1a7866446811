#!/usr/bin/env bash
# What the image tests use beyond Node: skopeo (validates the OCI layouts and archives),
# dpkg-deb (unpacks the Debian packages) and a running Docker engine (runs the images).
# Usage: install-tools.sh [skopeo] [dpkg-deb] [docker] (default: all three). Idempotent:
# installs only what is missing; `npm test`'s global setup calls it for the tests that need it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/toolchain/lib.sh"
tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(skopeo dpkg-deb docker)
for tool in "${tools[@]}"; do
  case $tool in
    skopeo) need_pkg skopeo skopeo ;;
    dpkg-deb) need_pkg dpkg-deb dpkg ;;
    docker) bash "$here/../e2e/toolchain/docker-engine.sh" ;;
    *) log "unknown tool $tool: pass skopeo, dpkg-deb or docker"; exit 2 ;;
  esac
done
