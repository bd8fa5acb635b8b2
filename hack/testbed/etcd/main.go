// Command etcd is upstream etcd built from its Go module, so the test bed gets the etcd
// line that Kubernetes expects (Debian ships an older one).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
