// Pins the cert-manager module whose deploy/crds/*.yaml (the published CustomResourceDefinitions)
// the chart tests install into the test apiserver to dry-run the chart's Certificates and
// Issuers (scripts/tool-binaries.sh cert-manager-crds). No Go code is built from it.
module redis-extender/tools/cert-manager-crds

go 1.26.0

require github.com/cert-manager/cert-manager v1.21.2
