// Command coredns is CoreDNS with only the plugins the test bed's Corefile uses
// (tools/tenfold_tools/testbed/node.py, coredns_objects) and the two of its default
// Corefile (whoami, log), so it starts without one as upstream's binary does. The full
// build compiles every plugin, cloud SDKs included, and took minutes longer here.
//
// This is upstream's way to build a custom CoreDNS without editing plugin.cfg: import
// coremain and the plugins, and set dnsserver.Directives, which orders the plugin chain of
// every server block. The order is upstream's (core/dnsserver/zdirectives.go of the pinned
// version) with the unused directives left out.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// directives is upstream's order, restricted to the plugins imported above.
var directives = []string{
	"reload",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
	"loop",
	"whoami",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
