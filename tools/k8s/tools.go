//go:build tools

// Package tools pins the Kubernetes commands that ferrocanary's local sandbox builds (the control
// plane, kubectl, and a real node's kubelet and kube-proxy): importing them here makes `go mod tidy`
// keep their dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
