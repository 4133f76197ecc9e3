//go:build tools

// Package tools pins kube-state-metrics, which a real-node sandbox runs. `go install module@version`
// cannot build it here (it asks the module proxy for the module's version list, which is refused), so
// this wrapper module requires it and `go build k8s.io/kube-state-metrics/v2` builds its main package.
package tools

import (
	_ "k8s.io/kube-state-metrics/v2"
)
