#!/usr/bin/env bash
# Builds, without any base image, the container images a kind node preloads, under the
# exact tags kubeadm and kind's manifests ask for: kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, etcd, coredns, pause, kindnetd, kube-network-policies,
# local-path-provisioner and local-path-helper. Each is a small rootfs folder fed
# to `docker import` (static binaries; kube-proxy also gets iptables/nft and their
# libraries copied from the node's Debian rootfs, whose path is $1).
# Prints the tags it built, one a line.
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
rootfs=${1:?usage: images.sh <debian-rootfs>}

k8s_bin=$("$here/k8s-binaries.sh" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
etcd_bin=$("$here/etcd.sh")
declare -A C
while IFS='=' read -r k v; do C[$k]=$v; done < <("$here/components.sh" coredns local-path-provisioner kindnetd kube-network-policies pause busybox)

PATHS='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

skeleton() { # skeleton <dir>: usrmerge layout, /tmp, passwd/group, nsswitch
  local d=$1
  mkdir -p "$d"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,var/run,root}
  ln -s usr/bin "$d/bin"; ln -s usr/sbin "$d/sbin"; ln -s usr/lib "$d/lib"; ln -s usr/lib64 "$d/lib64"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' > "$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$d/etc/group"
  echo 'hosts: files dns' > "$d/etc/nsswitch.conf"
}
with_busybox() { # with_busybox <dir>: static busybox and its applets in /usr/bin
  install -m 0755 "${C[busybox]}" "$1/usr/bin/busybox"
  "${C[busybox]}" --install -s "$1/usr/bin"
  # --install links to the host path of the binary; point them at the image's copy
  find "$1/usr/bin" -maxdepth 1 -type l -lname '*busybox' -exec ln -sf /usr/bin/busybox {} \;
}
import_dir() { # import_dir <dir> <tag> [docker-import --change ...]
  local d=$1 tag=$2; shift 2
  tar -C "$d" --numeric-owner -c . | docker import "$@" - "$tag" >/dev/null
  echo "$tag"
}
tag_of() { kubeadm_images | grep "/$1:"; }

# kube control plane: one static binary each
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  d="$work/$b"; skeleton "$d"; install -m 0755 "$k8s_bin/$b" "$d/usr/local/bin/$b"
  import_dir "$d" "$(tag_of "$b")" --change "ENV $PATHS" --change "ENTRYPOINT [\"/usr/local/bin/$b\"]"
done

# etcd (kubeadm runs `etcd ...`; the tag is kubeadm's, the binary is $ETCD_VERSION)
d="$work/etcd"; skeleton "$d"; install -m 0755 "$etcd_bin/etcd" "$d/usr/local/bin/etcd"
mkdir -p "$d/var/lib/etcd"
import_dir "$d" "$(tag_of etcd)" --change "ENV $PATHS" --change 'ENTRYPOINT ["/usr/local/bin/etcd"]'

# coredns: kubeadm's deployment passes only args, so the entrypoint is /coredns
d="$work/coredns"; skeleton "$d"; install -m 0755 "${C[coredns]}" "$d/coredns"
import_dir "$d" "$(tag_of coredns/coredns)" --change "ENV $PATHS" --change 'ENTRYPOINT ["/coredns"]'

# pause: under kubeadm's tag (the node's containerd sandbox_image is set to it)
d="$work/pause"; skeleton "$d"; install -m 0755 "${C[pause]}" "$d/pause"
import_dir "$d" "$(tag_of pause)" --change 'ENTRYPOINT ["/pause"]'

# kube-proxy: needs iptables(-restore/-save), ip6tables, conntrack, ipset, nft at run time.
# They come with their shared libraries and xtables extensions from the Debian rootfs, and
# an iptables-wrapper (like the official image's) picks the node's backend on first use.
d="$work/kube-proxy"; skeleton "$d"; with_busybox "$d"
install -m 0755 "$k8s_bin/kube-proxy" "$d/usr/local/bin/kube-proxy"
tools=(/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/conntrack /usr/sbin/ipset /usr/sbin/nft)
for t in "${tools[@]}"; do cp -a "$rootfs$t" "$d$t"; done
exts=$(cd "$rootfs" && ls usr/lib/x86_64-linux-gnu/xtables/*.so | sed 's|^|/|')
# shellcheck disable=SC2086 # xtables extensions have libraries of their own (libm, ...)
for lib in $(chroot "$rootfs" ldd "${tools[@]}" $exts 2>/dev/null \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
  real=$(chroot "$rootfs" readlink -f "$lib")
  mkdir -p "$d$(dirname "$real")" "$d$(dirname "$lib")"
  cp -a "$rootfs$real" "$d$real"
  [[ "$lib" == "$real" || -e "$d$lib" ]] || ln -s "$real" "$d$lib"
done
cp -a "$rootfs/usr/lib/x86_64-linux-gnu/xtables" "$d/usr/lib/x86_64-linux-gnu/"
for f in protocols services ethertypes; do [[ -f "$rootfs/etc/$f" ]] && cp "$rootfs/etc/$f" "$d/etc/"; done
for m in nft legacy; do
  for x in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf "xtables-$m-multi" "$d/usr/sbin/${x/tables/tables-$m}"
  done
done
cat > "$d/usr/sbin/iptables-wrapper" <<'SH'
#!/bin/sh
# Chooses the iptables backend the node already uses (as kind's entrypoint and
# kubernetes-sigs/iptables-wrappers do), relinks iptables* to it, then runs the command.
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-')
nft=$( (timeout 5 sh -c 'iptables-nft-save; ip6tables-nft-save') 2>/dev/null | grep -c '^-')
mode=nft; [ "${legacy:-0}" -gt "${nft:-0}" ] && mode=legacy
for x in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "xtables-$mode-multi" "/usr/sbin/$x"
done
exec "/usr/sbin/${0##*/}" "$@"
SH
chmod 0755 "$d/usr/sbin/iptables-wrapper"
for x in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf iptables-wrapper "$d/usr/sbin/$x"
done
import_dir "$d" "$(tag_of kube-proxy)" --change "ENV $PATHS" --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]'

# kindnetd (the manifest sets no command)
d="$work/kindnetd"; skeleton "$d"; install -m 0755 "${C[kindnetd]}" "$d/usr/local/bin/kindnetd"
import_dir "$d" "$KINDNETD_IMAGE" --change "ENV $PATHS" --change 'ENTRYPOINT ["/usr/local/bin/kindnetd"]'

# kube-network-policies: the agent behind a busybox sh entrypoint that points it at the
# kubelet's API server (kube-network-policies/entrypoint.sh)
d="$work/netpol"; skeleton "$d"; with_busybox "$d"
install -m 0755 "${C[kube-network-policies]}" "$d/usr/local/bin/kube-network-policies"
install -m 0755 "$here/kube-network-policies/entrypoint.sh" "$d/usr/local/bin/kube-network-policies-entrypoint"
import_dir "$d" "$KUBE_NETWORK_POLICIES_IMAGE" --change "ENV $PATHS" \
  --change 'ENTRYPOINT ["/usr/local/bin/kube-network-policies-entrypoint"]'

# local-path-provisioner (the manifest runs `local-path-provisioner ...`)
d="$work/lpp"; skeleton "$d"; install -m 0755 "${C[local-path-provisioner]}" "$d/usr/local/bin/local-path-provisioner"
import_dir "$d" "$LOCAL_PATH_PROVISIONER_IMAGE" --change "ENV $PATHS" --change 'ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]'

# local-path-helper: the helper pod runs `sh` scripts with mkdir/rm
d="$work/lph"; skeleton "$d"; with_busybox "$d"
import_dir "$d" "$LOCAL_PATH_HELPER_IMAGE" --change "ENV $PATHS"
