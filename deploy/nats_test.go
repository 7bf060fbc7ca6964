package deploy_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// chartValues is the default values.yaml of the NATS chart version that
// nats/values.yaml is written for, copied from nats-io/k8s.
const chartValues = "nats/chart-2.14.2-values.yaml"

func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// lookup returns the value at a dotted path of v.
func lookup(v map[string]any, path string) any {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// TestNATSValuesKnownToChart checks every key of nats/values.yaml against
// the chart's own values, so that a misspelt key, which Helm would ignore
// without a word, fails here. Below merge, patch and env the chart takes
// anything; a nats-box context has the keys of the chart's "default" one.
func TestNATSValuesKnownToChart(t *testing.T) {
	ours, chart := readValues(t, "nats/values.yaml"), readValues(t, chartValues)
	var walk func(path string, ours, chart map[string]any)
	walk = func(path string, ours, chart map[string]any) {
		for k, v := range ours {
			p := strings.TrimPrefix(path+"."+k, ".")
			def, known := chart[k]
			switch {
			case path == "natsBox.contexts":
				def, known = chart["default"], true
			case path == "podTemplate.topologySpreadConstraints":
				continue
			}
			if !known {
				t.Errorf("%s: not a value of the chart (see %s)", p, chartValues)
				continue
			}
			if slices.Contains([]string{"merge", "patch", "env"}, k) {
				continue
			}
			sub, isMap := v.(map[string]any)
			defSub, defIsMap := def.(map[string]any)
			switch {
			case isMap && defIsMap:
				walk(p, sub, defSub)
			case isMap && def != nil && path != "natsBox.contexts":
				t.Errorf("%s: a map, but the chart's value is %T", p, def)
			case !isMap && defIsMap:
				t.Errorf("%s: %T, but the chart's value is a map", p, v)
			}
		}
	}
	walk("", ours, chart)

	// The accounts switchboard nats-config writes are values of the chart
	// too, below config.merge.
	p := buildProduct(t)
	dir := t.TempDir()
	runProduct(t, p, nil, "nats-config", "--out", dir)
	gen := readValues(t, filepath.Join(dir, "helm-values.json"))
	if _, ok := lookup(gen, "config.merge.accounts.SWITCHBOARD").(map[string]any); !ok || len(gen) != 1 {
		t.Errorf("helm-values.json: want only config.merge.accounts.SWITCHBOARD, got %v", gen)
	}
}

// TestNATSValuesForSwitchboard checks the cluster the values describe and
// that the manifests reach it: the client Service's name and namespace in
// SWITCHBOARD_NATS_URL, its port, and the pods the NetworkPolicy lets the
// services reach.
func TestNATSValuesForSwitchboard(t *testing.T) {
	v := readValues(t, "nats/values.yaml")
	for path, want := range map[string]any{
		"config.cluster.enabled":                 true,
		"config.cluster.replicas":                float64(3),
		"config.jetstream.enabled":               true,
		"config.jetstream.fileStore.enabled":     true,
		"config.jetstream.fileStore.pvc.enabled": true,
		"config.jetstream.memoryStore.enabled":   false,
		"podDisruptionBudget.enabled":            true,
	} {
		if got := lookup(v, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	// Pods connect with nkeys of a static account, which
	// `switchboard nats-config` writes as helm-values.json: no resolver.
	if r, _ := lookup(v, "config.resolver.enabled").(bool); r {
		t.Error("config.resolver.enabled: the accounts are static (switchboard nats-config), not JWTs")
	}
	name, _ := lookup(v, "fullnameOverride").(string)
	if name == "" {
		t.Fatal("set fullnameOverride, so that the Service's name does not depend on the release's")
	}
	if n, _ := lookup(v, "nameOverride").(string); n != "" && n != "nats" {
		t.Errorf("nameOverride %q changes the pods' app.kubernetes.io/name, which the NetworkPolicy selects", n)
	}
	port := "4222"
	if p, ok := lookup(v, "config.nats.port").(float64); ok {
		port = strconv.Itoa(int(p))
	}

	m := render(t, "base")
	var natsURL string
	for _, cm := range m.configMaps {
		natsURL = cm.Data["SWITCHBOARD_NATS_URL"]
	}
	for _, raw := range strings.Split(natsURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			t.Fatalf("SWITCHBOARD_NATS_URL %q: %v", natsURL, err)
		}
		labels := strings.Split(u.Hostname(), ".")
		if len(labels) < 3 || labels[0] != name || labels[2] != "svc" || u.Port() != port {
			t.Fatalf("SWITCHBOARD_NATS_URL %q: want nats://%s.NAMESPACE.svc.cluster.local:%s, the chart's client Service", natsURL, name, port)
		}
		namespace := labels[1]

		// The egress rule to NATS selects the chart's pods in that namespace.
		found := false
		for _, np := range m.netpols {
			for _, e := range np.Spec.Egress {
				for _, to := range e.To {
					if to.NamespaceSelector == nil || to.PodSelector == nil {
						continue
					}
					if to.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == namespace &&
						to.PodSelector.MatchLabels["app.kubernetes.io/name"] == "nats" &&
						to.PodSelector.MatchLabels["app.kubernetes.io/component"] == "nats" {
						found = true
					}
				}
			}
		}
		if !found {
			t.Errorf("no NetworkPolicy egress rule selects the NATS pods (app.kubernetes.io/name=nats, component=nats) in namespace %q", namespace)
		}
	}
}
