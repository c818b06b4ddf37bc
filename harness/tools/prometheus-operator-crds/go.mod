// Pins the Prometheus operator module whose example/prometheus-operator-crd/*.yaml (the
// published CustomResourceDefinitions) the chart tests install into the test apiserver
// (scripts/tool-binaries.sh prometheus-operator-crds). No Go code is built from it.
module redis-extender/tools/prometheus-operator-crds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.94.1
