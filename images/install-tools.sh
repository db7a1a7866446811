#!/usr/bin/env bash
# What the image tests use beyond Node: skopeo (validates the OCI layouts and archives),
# dpkg-deb (unpacks the Debian packages) and a running Docker engine (runs the images).
# Idempotent: installs only what is missing; .ci/run may call it before the tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/toolchain/lib.sh"
need_pkg dpkg-deb dpkg
need_pkg skopeo skopeo
bash "$here/../e2e/toolchain/docker-engine.sh"
