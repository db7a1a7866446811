// kindnetd (waxflow's stand-in): the part of kind's CNI daemon that a test cluster
// needs, built here because the real kindnetd image can neither be pulled nor built
// from the Go module proxy. It runs as kind's default-cni DaemonSet (hostNetwork,
// NET_ADMIN) under the tag kind's manifest names. Every 10 s it lists the nodes and
//   - writes /etc/cni/net.d/10-kindnet.conflist (ptp + host-local on this node's
//     spec.podCIDRs, portmap), the config kind's kindnetd writes;
//   - routes every other node's pod CIDRs via that node's InternalIP.
//
// Network policies and masquerading to outside the cluster are not implemented: the
// e2e clusters reach nothing outside themselves.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	saDir       = "/var/run/secrets/kubernetes.io/serviceaccount"
	kubeletConf = "/etc/kubernetes/kubelet.conf"
)

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDR  string   `json:"podCIDR"`
			PodCIDRs []string `json:"podCIDRs"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

func client() (*http.Client, string) {
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		log.Fatalf("reading CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	// Talk to the API server the kubelet uses (waxflow's manifest mounts kubelet.conf),
	// not the kubernetes Service: until kube-proxy has written its rules, the Service IP
	// is routed off the node, out of the machine.
	if conf, err := os.ReadFile(kubeletConf); err == nil {
		for _, line := range strings.Split(string(conf), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "server:"); ok {
				return c, strings.TrimSpace(v)
			}
		}
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	return c, "https://" + net.JoinHostPort(host, port)
}

func listNodes(c *http.Client, base string) (*nodeList, error) {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("list nodes: %s", resp.Status)
	}
	var nl nodeList
	return &nl, json.NewDecoder(resp.Body).Decode(&nl)
}

func conflist(cidrs []string) string {
	ranges := []string{}
	for _, c := range cidrs {
		ranges = append(ranges, fmt.Sprintf(`[{"subnet": %q}]`, c))
	}
	routes := `{"dst": "0.0.0.0/0"}`
	for _, c := range cidrs {
		if strings.Contains(c, ":") {
			routes += `, {"dst": "::/0"}`
			break
		}
	}
	return fmt.Sprintf(`{
  "cniVersion": "0.3.1",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [%s],
        "ranges": [%s]
      },
      "mtu": 1500
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, routes, strings.Join(ranges, ", "))
}

func writeIfChanged(path, content string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	log.Printf("writing %s", path)
	return os.Rename(tmp, path)
}

func sync(c *http.Client, base, self, hostIP string) error {
	nl, err := listNodes(c, base)
	if err != nil {
		return err
	}
	for _, n := range nl.Items {
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" && (ip == "" || strings.Contains(ip, ":")) {
				ip = a.Address
			}
		}
		if n.Metadata.Name == self || (hostIP != "" && ip == hostIP) {
			if len(cidrs) == 0 {
				return fmt.Errorf("node %s has no podCIDR yet", n.Metadata.Name)
			}
			if err := writeIfChanged("/etc/cni/net.d/10-kindnet.conflist", conflist(cidrs)); err != nil {
				return err
			}
			continue
		}
		gw := net.ParseIP(ip)
		for _, c := range cidrs {
			_, dst, err := net.ParseCIDR(c)
			if err != nil || gw == nil || (gw.To4() == nil) != (dst.IP.To4() == nil) {
				continue
			}
			if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw}); err != nil {
				log.Printf("route %s via %s: %v", dst, gw, err)
			}
		}
	}
	return nil
}

func main() {
	self, _ := os.Hostname()
	if v := os.Getenv("NODE_NAME"); v != "" {
		self = v
	}
	hostIP := os.Getenv("HOST_IP")
	c, base := client()
	log.Printf("kindnetd (waxflow) on node %s (%s), API %s", self, hostIP, base)
	for {
		if err := sync(c, base, self, hostIP); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(10 * time.Second)
	}
}
