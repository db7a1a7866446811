#!/usr/bin/env bash
# The e2e suite's cluster step: a kind cluster with no container registry.
#   cluster.sh [up]   ensure the Docker engine, kind, the node image; (re)create the
#                     cluster; verify it (default)
#   cluster.sh verify verify a running cluster
#   cluster.sh env    print the lines that put kind on PATH and KUBECONFIG at the
#                     cluster, for a shell to eval: eval "$(bash e2e/toolchain/cluster.sh env)"
#   cluster.sh down   delete the cluster (cached images stay)
# KIND_NODE_IMAGE=<image> uses that node image (e.g. a stock kindest/node where a
# registry is reachable) instead of building waxflow/kind-node. KIND_WORKERS=<n> adds
# worker nodes (default: a single control-plane node). The kubeconfig is written
# to $KUBECONFIG_OUT (default $WAXFLOW_CACHE/kind/$KIND_CLUSTER_NAME.kubeconfig).
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-up}
# Before anything starts the engine or builds a tool.
case "$cmd" in up|verify|env|down) ;; *) echo "usage: $0 [up|verify|env|down]" >&2; exit 2 ;; esac
: "${KUBECONFIG_OUT:=$WAXFLOW_CACHE/kind/$KIND_CLUSTER_NAME.kubeconfig}"
export KUBECONFIG="$KUBECONFIG_OUT"
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start ))s"; }

# Where `up` leaves kind (go_install's folder) and the kubeconfig; nothing is built here.
kind_bin="$WAXFLOW_CACHE/kind/$KIND_VERSION/bin"
if [[ $cmd == env ]]; then
  [[ -x "$kind_bin/kind" && -f "$KUBECONFIG_OUT" ]] \
    || { echo "cluster.sh env: no cluster made yet ($kind_bin/kind or $KUBECONFIG_OUT missing); run: bash $0 up" >&2; exit 1; }
  printf 'export PATH=%q:"$PATH"\nexport KUBECONFIG=%q\n' "$kind_bin" "$KUBECONFIG_OUT"
  exit 0
fi

"$here/docker-engine.sh"
kind=$("$here/components.sh" kind); kind=${kind#kind=}
kubectl="$("$here/k8s-binaries.sh" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)/kubectl"
k() { "$kubectl" "$@"; }

test_image() { # waxflow/busybox:e2e, a static busybox from Debian, no base image
  docker image inspect "$TEST_BUSYBOX_IMAGE" >/dev/null 2>&1 && return 0
  local bb d; bb=$("$here/components.sh" busybox); bb=${bb#busybox=}
  d=$(mktemp -d); mkdir -p "$d"/{bin,tmp,etc,www}; chmod 1777 "$d/tmp"
  install -m 0755 "$bb" "$d/bin/busybox"
  for a in $("$bb" --list); do [[ $a == busybox ]] || ln -s busybox "$d/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$d/etc/group"
  tar -C "$d" --numeric-owner -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$TEST_BUSYBOX_IMAGE" >/dev/null
  rm -rf "$d"
}

guard_network() {
  # Kind nodes share the docker network "kind" (created here if missing, as kind would).
  # Nothing in a test cluster may leave this machine: drop whatever the bridge would
  # forward elsewhere (e.g. a Service IP used before kube-proxy has written its rules
  # is routed off the node; external DNS lookups). Node <-> host traffic is untouched.
  docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null
  local id br
  id=$(docker network inspect kind -f '{{.Id}}')
  br=$(docker network inspect kind -f '{{index .Options "com.docker.network.bridge.name"}}')
  [[ -n "$br" && "$br" != "<no value>" ]] || br="br-${id:0:12}"
  iptables -C DOCKER-USER -i "$br" ! -o "$br" -j DROP 2>/dev/null \
    || iptables -I DOCKER-USER -i "$br" ! -o "$br" -j DROP
  ip6tables -C FORWARD -i "$br" ! -o "$br" -j DROP 2>/dev/null \
    || ip6tables -I FORWARD -i "$br" ! -o "$br" -j DROP 2>/dev/null || true
}

verify() {
  local t0; t0=$(date +%s)
  log "verify: kube-system and local-path-storage pods"
  k wait --for=condition=Ready nodes --all --timeout=180s
  for ns in kube-system local-path-storage; do
    for _ in $(seq 1 90); do
      [[ -n "$(k get pods -n "$ns" -o name 2>/dev/null)" ]] && break; sleep 2
    done
  done
  k wait --for=condition=Ready pods --all -n kube-system --timeout=180s
  # The provisioner, not its helper pods: a reused cluster may be deleting a volume, and
  # a helper pod ends Succeeded, never Ready.
  k wait --for=condition=Available deployment --all -n local-path-storage --timeout=180s
  k get pods -A -o wide
  for app in "k8s-app=kube-dns" "k8s-app=kube-proxy" "app=kindnet" "component=etcd" "component=kube-apiserver"; do
    [[ -n "$(k get pods -n kube-system -l "$app" -o name)" ]] || { log "no pod with $app"; return 1; }
  done

  log "verify: a PVC binds, a locally built image runs, a pod reaches another via a Service"
  test_image
  "$kind" load docker-image --name "$KIND_CLUSTER_NAME" "$TEST_BUSYBOX_IMAGE" >&2
  k delete namespace waxflow-smoke --ignore-not-found --wait=true >/dev/null
  k create namespace waxflow-smoke >/dev/null
  k apply -n waxflow-smoke -f - <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  containers:
  - name: httpd
    image: $TEST_BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: [sh, -c, 'echo waxflow-ok > /data/index.html && exec httpd -f -p 8080 -h /data']
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
YAML
  k wait -n waxflow-smoke --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=120s
  k wait -n waxflow-smoke --for=condition=Ready pod/server --timeout=120s
  k run -n waxflow-smoke client --image="$TEST_BUSYBOX_IMAGE" --image-pull-policy=Never --restart=Never \
    --command -- sh -c 'for i in $(seq 1 30); do wget -qO- http://server.waxflow-smoke.svc.cluster.local/ && exit 0; sleep 1; done; exit 1' >/dev/null
  k wait -n waxflow-smoke --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=90s \
    || { k logs -n waxflow-smoke client; return 1; }
  local got; got=$(k logs -n waxflow-smoke client)
  [[ "$got" == waxflow-ok ]] || { log "client got '$got'"; return 1; }
  k delete namespace waxflow-smoke --wait=false >/dev/null
  log "verify: ok ($(( $(date +%s) - t0 ))s)"
}

case "$cmd" in
  down)
    "$kind" delete cluster --name "$KIND_CLUSTER_NAME" --kubeconfig "$KUBECONFIG_OUT"; exit 0 ;;
  verify) verify; exit $? ;;
esac

image=${KIND_NODE_IMAGE:-}
if [[ -z "$image" ]]; then image=$("$here/node-image.sh"); fi
log "node image ready: $image ($(elapsed))"

if "$kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
  log "deleting the existing cluster $KIND_CLUSTER_NAME"
  "$kind" delete cluster --name "$KIND_CLUSTER_NAME" --kubeconfig "$KUBECONFIG_OUT"
fi
guard_network
mkdir -p "$(dirname "$KUBECONFIG_OUT")"
config="$WAXFLOW_CACHE/kind/$KIND_CLUSTER_NAME.yaml"
# Images named localhost:$E2E_REGISTRY_PORT/... are pulled from a registry on this host
# (the e2e suite starts one there): the node reaches the host at the network's gateway.
gateway=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')
cat > "$config" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:$E2E_REGISTRY_PORT"]
    endpoint = ["http://$gateway:$E2E_REGISTRY_PORT"]
nodes:
- role: control-plane
  image: $image
YAML
for _ in $(seq 1 "${KIND_WORKERS:-0}"); do printf -- '- role: worker\n  image: %s\n' "$image" >> "$config"; done
t_create=$(date +%s)
"$kind" create cluster --name "$KIND_CLUSTER_NAME" --config "$config" --kubeconfig "$KUBECONFIG_OUT" --wait 3m
log "kind create cluster: $(( $(date +%s) - t_create ))s"
verify
log "cluster $KIND_CLUSTER_NAME up and verified in $(elapsed); KUBECONFIG=$KUBECONFIG_OUT"
log "to use it from a shell (kind on PATH, KUBECONFIG set): eval \"\$(bash $0 env)\""
