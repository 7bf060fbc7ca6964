package deploy_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// manifests are the rendered objects of one kustomization, decoded into
// the Kubernetes API types.
type manifests struct {
	deployments     []*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	services        []*corev1.Service
	namespaces      []*corev1.Namespace
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	serviceAccounts map[string]*corev1.ServiceAccount
	// namespaced holds every namespaced object as kind/name → namespace.
	namespaced map[string]string
}

// strictDecoder decodes YAML or JSON into the registered API types and
// fails on unknown or duplicate fields, as `kubectl apply
// --validate=strict` does.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// render builds the kustomization kubernetes/<dir> and decodes every object
// strictly. The production overlay's secret files are never read: render
// works on a copy of kubernetes/ with test values in their place.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	root := copyTree(t, "kubernetes")
	writeTestSecrets(t, filepath.Join(root, "overlays", "production", "secrets"))

	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	dec := strictDecoder(t)
	m := manifests{
		configMaps:      map[string]*corev1.ConfigMap{},
		secrets:         map[string]*corev1.Secret{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		namespaced:      map[string]string{},
	}
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := dec.Decode(y, nil, nil)
		if err != nil {
			t.Errorf("%s %s: %v", r.GetKind(), r.GetName(), err)
			continue
		}
		id := gvk.Kind + "/" + r.GetName()
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		case *networkingv1.NetworkPolicy:
			m.netpols = append(m.netpols, o)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *corev1.ServiceAccount:
			m.serviceAccounts[o.Name] = o
		case *corev1.Namespace:
			m.namespaces = append(m.namespaces, o)
			continue
		default:
			t.Errorf("%s: a kind this test does not check; add its checks", id)
		}
		m.namespaced[id] = r.GetNamespace()
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// testSecrets stands in for the files of overlays/production/secrets/, with
// values that the settings accept.
func testSecrets(t *testing.T) map[string]string {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"switchboard.env": fmt.Sprintf("SWITCHBOARD_REDIS_URL=redis://:test-password@redis.example:6379/0\nSWITCHBOARD_WEBHOOK_ENCRYPTION_KEY=%s\n"+
			"SWITCHBOARD_GATEWAY_API_KEYS=partner=test-key-0123456789abcdef\n"+
			"SWITCHBOARD_POSTGRES_URL=postgres://projector:test-password@postgres.example:5432/switchboard\n",
			base64.StdEncoding.EncodeToString(key)),
	}
	for _, svc := range []string{"users", "orders", "notifications", "gateway", "projector"} {
		files[svc+".nk"] = "SUAtest" + svc + "\n"
	}
	return files
}

func writeTestSecrets(t *testing.T, dir string) {
	t.Helper()
	for name, content := range testSecrets(t) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies src into a temporary directory, leaving out any file a
// developer put in a secrets/ directory, and returns the copy's path.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if filepath.Base(filepath.Dir(path)) == "secrets" && !strings.HasSuffix(path, ".md") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
