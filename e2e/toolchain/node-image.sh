#!/usr/bin/env bash
# Ensures the kind node image $NODE_IMAGE exists in the Docker engine, assembled here with
# no registry (kind build node-image always pulls). Order of preference:
#   1. already in the engine;  2. the cached docker-archive
#   $WAXFLOW_CACHE/node/$K8S_VERSION/<tag>.tar (docker load);  3. build it:
#   - a Debian bookworm rootfs (debootstrap: systemd 252, Debian's containerd, runc, CNI
#     plugins), cached by package list;
#   - kind's images/base/files and the base Dockerfile's systemd set-up, done by hand;
#   - kubeadm/kubelet/kubectl in /usr/bin, crictl, /kind/version and kind's default CNI
#     and storage manifests (taken from the kind module's nodeimage package);
#   - every image from images.sh imported into containerd (k8s.io namespace, pinned),
#     in a running container as kind's own builder does; then `docker commit`.
# Prints the image tag.
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
"$here/docker-engine.sh"  # engine, debootstrap, jq, the runc wrapper in the cache
# The key covers every input of the image besides the versions' own builds, so an edit
# to these scripts rebuilds it; it is the image's label and part of the archive's name.
key=$( (cd "$here" && cat lib.sh node-image.sh images.sh components.sh kindnetd/main.go kube-network-policies/* \
  "$(ls ../../../shared/tools/runc-nosysres 2>/dev/null || echo runc-nosysres)"; env | grep -E '^(NODE_RUNC_WRAPPER)=' || true) \
  | sha256sum | cut -c1-12)
archive="$WAXFLOW_CACHE/node/$K8S_VERSION/$(echo "$NODE_IMAGE" | tr '/:' '__')-$key.tar"
have_image() {
  [[ "$(docker image inspect -f '{{index .Config.Labels "waxflow.node-key"}}' "$NODE_IMAGE" 2>/dev/null)" == "$key" ]]
}

if have_image; then echo "$NODE_IMAGE"; exit 0; fi
if [[ -f "$archive" ]]; then
  log "loading $NODE_IMAGE from $archive"
  docker load -i "$archive" >&2
  if have_image; then echo "$NODE_IMAGE"; exit 0; fi
  log "$archive holds another build; rebuilding"
fi

t0=$(date +%s)
# --- the Debian rootfs --------------------------------------------------------------
pkgs=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins,socat,ebtables,ipset
rootfs="$WAXFLOW_CACHE/node/rootfs-bookworm-$(echo "$pkgs" | sha256sum | cut -c1-12)"
if [[ ! -f "$rootfs/.complete" ]]; then
  command -v debootstrap >/dev/null || "$here/docker-engine.sh"
  log "debootstrap bookworm into $rootfs"
  rm -rf "$rootfs.tmp"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$rootfs.tmp" http://deb.debian.org/debian >&2
  rm -rf "$rootfs"; mv "$rootfs.tmp" "$rootfs"; touch "$rootfs/.complete"
  log "rootfs: $(( $(date +%s) - t0 ))s"
fi

# --- binaries and images ------------------------------------------------------------
k8s_bin=$("$here/k8s-binaries.sh" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
declare -A C
while IFS='=' read -r k v; do C[$k]=$v; done < <("$here/components.sh" crictl)
mapfile -t images < <("$here/images.sh" "$rootfs")
log "images: ${images[*]}"

# --- the node rootfs ----------------------------------------------------------------
kindmod=$(cd /tmp && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
files="$kindmod/images/base/files"
work=$(mktemp -d); build_id=""
cleanup() { [[ -n "$build_id" ]] && docker rm -f "$build_id" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT
r="$work/rootfs"
cp -a "$rootfs" "$r"; rm -f "$r/.complete"

# kind's static files, with the base Dockerfile's modes (scripts 0755, the rest 0644)
install -D -m 0755 -t "$r/usr/local/bin" "$files"/usr/local/bin/*
mkdir -p "$r/kind/bin" "$r/LICENSES"
cp -r "$files/kind/." "$r/kind/"; chmod -R u=rwX,go=rX "$r/kind"; chmod 0755 "$r"/kind/bin/*
install -m 0644 "$files/etc/crictl.yaml" "$r/etc/"
install -D -m 0644 -t "$r/etc/containerd" "$files"/etc/containerd/*
install -D -m 0644 -t "$r/etc/default" "$files"/etc/default/*
install -D -m 0644 -t "$r/etc/sysctl.d" "$files"/etc/sysctl.d/*
find "$files/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 -t "$r/etc/systemd/system" {} +
install -D -m 0644 -t "$r/etc/systemd/system/kubelet.service.d" "$files"/etc/systemd/system/kubelet.service.d/*

# the base Dockerfile's systemd clean-up
find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
  "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
  "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$r/etc/systemd/journald.conf"
ln -sf /lib/systemd/systemd "$r/sbin/init"
chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >&2
chroot "$r" systemctl mask systemd-binfmt.service >&2
mkdir -p "$r/etc/kubernetes/manifests"

# Debian's containerd/runc/CNI in the places kind's files name
for b in containerd ctr containerd-shim-runc-v2; do ln -sf "/usr/bin/$b" "$r/usr/local/bin/$b"; done
mkdir -p "$r/opt/cni/bin"; cp -a "$r"/usr/lib/cni/. "$r/opt/cni/bin/"
chroot "$r" ctr oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > "$r/etc/containerd/cri-base.json"
# The VM lacks CAP_SYS_RESOURCE, so nothing may lower an oom_score_adj: runc then fails
# every sandbox ("can't get final child's PID from pipe: EOF") when containerd asks for
# -998. restrict_oom_score_adj (what kind's entrypoint sets for rootless) clamps it.
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml"
# the sandbox image kind's config names (pause:3.10) is not kubeadm's: use kubeadm's
sed -i "s|sandbox_image = .*|sandbox_image = \"$(kubeadm_images | grep /pause:)\"|" "$r/etc/containerd/config.toml"
# The runc wrapper (drops CAP_SYS_RESOURCE) goes in too; NODE_RUNC_WRAPPER=1 makes it
# containerd's runc binary (needed only if privileged pods fail inside the node).
install -m 0755 "$WAXFLOW_CACHE/bin/runc-nosysres" "$r/usr/local/sbin/runc-nosysres"
if [[ "${NODE_RUNC_WRAPPER:-0}" == 1 ]]; then
  sed -i '/runtimes.runc.options\]/a\    BinaryName = "/usr/local/sbin/runc-nosysres"' "$r/etc/containerd/config.toml"
fi

# Kubernetes bits
for b in kubeadm kubelet kubectl; do install -m 0755 "$k8s_bin/$b" "$r/usr/bin/$b"; done
install -m 0755 "${C[crictl]}" "$r/usr/local/bin/crictl"
echo -n "$K8S_VERSION" > "$r/kind/version"
mkdir -p "$r/kind/manifests"
python3 - "$kindmod/pkg/build/nodeimage" "$r/kind/manifests" "$here/kube-network-policies/daemonset.yaml" \
  "$KUBE_NETWORK_POLICIES_IMAGE" "$(kubeadm_images | grep /kube-proxy:)" <<'PY'
import re, sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
agent, agent_image, kube_proxy_image = pathlib.Path(sys.argv[3]), sys.argv[4], sys.argv[5]
text = (src / "const_cni.go").read_text() + (src / "const_storage.go").read_text()
consts = dict(re.findall(r'const (\w+) = "([^"]*)"', text))
def manifest(name):
    body = text.split("const %s = `" % name, 1)[1].split("\n`\n", 1)[0] + "\n"
    return re.sub(r'` \+ (\w+) \+ `', lambda m: consts[m.group(1)], body)
cni = manifest("defaultCNIManifest")
# waxflow's kindnetd reads the API server address from the kubelet's kubeconfig
mount = "        - name: nri-plugin\n          mountPath: /var/run/nri\n"
vol = "      - name: nri-plugin\n        hostPath:\n          path: /var/run/nri\n"
assert mount in cni and vol in cni
cni = cni.replace(mount, mount + "        - name: kubelet-conf\n          mountPath: /etc/kubernetes/kubelet.conf\n          readOnly: true\n")
cni = cni.replace(vol, vol + "      - name: kubelet-conf\n        hostPath:\n          path: /etc/kubernetes/kubelet.conf\n          type: File\n")
# kind applies default-cni.yaml at cluster creation: the NetworkPolicy agent comes with it
policies = agent.read_text().replace("@AGENT_IMAGE@", agent_image).replace("@KUBE_PROXY_IMAGE@", kube_proxy_image)
assert agent_image in policies and kube_proxy_image in policies
(out / "default-cni.yaml").write_text(cni.rstrip("\n") + "\n---\n" + policies)
(out / "default-storage.yaml").write_text(manifest("defaultStorageManifest"))
PY
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r/etc/machine-id"
: > "$r/etc/machine-id"

# --- import the images into containerd, in a running container ----------------------
base="waxflow/kind-node-base:$K8S_VERSION"
log "importing the node rootfs as $base"
tar -C "$r" --numeric-owner -c . | docker import - "$base" >/dev/null
rm -rf "$r"
build_id=$(docker run -d --entrypoint=sleep --security-opt seccomp=unconfined "$base" infinity)
docker exec "$build_id" bash -c 'nohup containerd > /var/log/containerd-build.log 2>&1 &'
for _ in $(seq 1 30); do docker exec "$build_id" ctr --namespace=k8s.io version >/dev/null 2>&1 && break; sleep 1; done
docker save "${images[@]}" | docker exec -i "$build_id" \
  ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --no-unpack --digests - >&2
docker exec "$build_id" ctr --namespace=k8s.io images list -q >&2
docker exec "$build_id" pkill containerd || true
sleep 2
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'ENV container=docker' \
  --change "LABEL waxflow.node-key=$key" \
  "$build_id" "$NODE_IMAGE" >/dev/null
docker rm -f "$build_id" >/dev/null; build_id=""
docker rmi "$base" >/dev/null 2>&1 || true
log "node image built in $(( $(date +%s) - t0 ))s; saving $archive"
mkdir -p "$(dirname "$archive")"
rm -f "${archive%-"$key".tar}"-*.tar  # older builds of this image (another NODE_IMAGE keeps its own)
docker save -o "$archive.tmp" "$NODE_IMAGE" && mv "$archive.tmp" "$archive"
echo "$NODE_IMAGE"
