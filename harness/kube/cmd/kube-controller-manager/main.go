// kube-controller-manager of the Kubernetes release required in ../../go.mod: upstream's
// cmd/kube-controller-manager/controller-manager.go main, built from Go modules
// (scripts/kube-binaries.sh current). Development only: the keeper's e2e tests run its
// StatefulSet, disruption (PDB) and garbage-collector controllers.
package main

import (
	"os"
	_ "time/tzdata" // for CronJob Time Zone support

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugin
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	command := app.NewControllerManagerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
