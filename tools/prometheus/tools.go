//go:build tools

// Package tools pins the Prometheus a real-node sandbox runs. Debian's package is built without
// Kubernetes service discovery, which a node's scrape jobs need; this one is built from the module
// with every discovery mechanism left out but Kubernetes' (build tags remove_all_sd and
// enable_kubernetes_sd), and without the web UI's assets (the HTTP API is all the sandbox uses).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
