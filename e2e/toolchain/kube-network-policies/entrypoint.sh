#!/bin/sh
# The agent's in-cluster config, pointed at the API server the kubelet uses (as kindnetd/
# does): until kube-proxy has written its rules the kubernetes Service IP is routed off
# the node.
server=$(sed -n 's|^ *server: https://||p' /etc/kubernetes/kubelet.conf)
if [ -n "$server" ]; then
  export KUBERNETES_SERVICE_HOST="${server%:*}" KUBERNETES_SERVICE_PORT="${server##*:}"
fi
exec /usr/local/bin/kube-network-policies "$@"
