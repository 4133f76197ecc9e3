// Command etcd is a thin wrapper around etcd's own entry point, so that the sandbox can build
// a pinned etcd 3.5 from the Go module proxy (no release download needed).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
