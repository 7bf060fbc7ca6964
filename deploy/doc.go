// Package deploy holds no code: its tests check the deployment files beside
// it against what they deploy. The Kubernetes manifests (kubernetes/) are
// rendered with kustomize, decoded strictly into the Kubernetes API types,
// and held against the switchboard binary: its services, settings,
// defaults and ops endpoints. The NATS Helm values (nats/) are held against
// the chart's own values and against the manifests.
//
// It is a module of its own, so that the users of the toolkit never
// download Kubernetes' packages: run its tests with
//
//	cd deploy && go test ./...
package deploy
