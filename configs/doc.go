// Package configs holds ittybit's example configuration and deployment
// files, and no code: its tests check those files offline. The Kubernetes
// manifests (kubernetes/, its overlays built as kustomize would) are
// decoded strictly into the Kubernetes API types, the Nomad jobs (nomad/)
// against a schema of the job specification, the systemd units (systemd/)
// with systemd-analyze; every ittybit command line and ITTYBIT_ variable
// in them is checked against the flags of the binary built from this
// tree. Each check is also fed broken files, to show that it fails.
package configs
