//go:build tools

// Package tools pins the Kubernetes control-plane commands that ferrocanary's local
// sandbox builds: importing them here makes `go mod tidy` keep their dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
