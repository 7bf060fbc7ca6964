package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Settings the manifests set before the binary knows them, each with the
// work that adds it. The name check skips them until the binary lists them;
// from then on they are checked like every other. Remove an entry when its
// work has landed.
var pendingSettings = map[string]string{}

// Paths the manifests point at before the binary serves them; a pending
// path may answer 404, any other answer must be 200.
var pendingPaths = map[string]string{}

// runtimeEnv are environment variables read by the Go runtime, not by the
// settings table.
var runtimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG"}

const (
	containerName = "switchboard"
	opsPortName   = "ops"
)

// TestManifests renders the base and the production overlay and checks the
// essentials against the binary: every service is deployed and only real
// ones, probes hit paths the ops server serves on the port it listens on,
// every setting is one the binary reads and accepts, every reference
// resolves, and PDB, HPA and NetworkPolicy select the pods they are for.
func TestManifests(t *testing.T) {
	p := buildProduct(t)
	uid, gid := imageUser(t)
	served := map[string]int{}

	for _, dir := range []string{"base", "overlays/production"} {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			if len(m.deployments) == 0 {
				t.Fatal("no Deployment rendered")
			}
			t.Run("every service deployed once", func(t *testing.T) { checkServices(t, p, m) })
			t.Run("references resolve", func(t *testing.T) { checkReferences(t, m) })
			t.Run("one image", func(t *testing.T) { checkImage(t, m, dir != "base") })
			t.Run("security", func(t *testing.T) { checkSecurity(t, m, uid, gid) })
			for _, d := range m.deployments {
				t.Run(d.Name, func(t *testing.T) {
					env := checkSettings(t, p, m, d)
					checkPorts(t, p, d, env, served)
					checkGateway(t, m, d, env, dir != "base")
					checkShutdown(t, d, env)
					checkResources(t, d)
				})
			}
			t.Run("pdb", func(t *testing.T) { checkPDBs(t, m) })
			t.Run("hpa", func(t *testing.T) { checkHPAs(t, m) })
			t.Run("services", func(t *testing.T) { checkServiceObjects(t, m) })
			t.Run("networkpolicy", func(t *testing.T) { checkNetworkPolicies(t, p, m) })
			if dir != "base" {
				t.Run("namespace", func(t *testing.T) { checkNamespace(t, m) })
			}
		})
	}

	t.Run("paths served", func(t *testing.T) {
		var paths []string
		for path := range served {
			paths = append(paths, path)
		}
		slices.Sort(paths)
		codes := servedPaths(t, p, paths)
		for _, path := range paths {
			switch code := codes[path]; {
			case code == http.StatusOK:
			case code == http.StatusNotFound && pendingPaths[path] != "":
				t.Logf("%s: 404, pending: %s", path, pendingPaths[path])
			default:
				t.Errorf("GET %s on switchboard dev's ops server: %d, want 200", path, code)
			}
		}
	})
}

// TestStrictDecodingRejectsUnknownFields shows that the decoder render uses
// fails on a field the API does not have, so that a typo cannot pass.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	dec := strictDecoder(t)
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"misplaced":     "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, readinessProbe: {path: /readyz}}]}\n",
		"duplicate":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\ndata: {a: '2'}\n",
		"unknown kind":  "apiVersion: v1\nkind: Podd\nmetadata: {name: x}\n",
	} {
		if _, _, err := dec.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
	ok := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 2}\n"
	if _, _, err := dec.Decode([]byte(ok), nil, nil); err != nil {
		t.Errorf("a valid Deployment: %v", err)
	}
}

// serviceOf returns the service a Deployment runs: its args are exactly
// [run SERVICE].
func serviceOf(d *appsv1.Deployment) string {
	c := container(d)
	if c == nil || len(c.Command) > 0 || len(c.Args) != 2 || c.Args[0] != "run" {
		return ""
	}
	return c.Args[1]
}

func container(d *appsv1.Deployment) *corev1.Container {
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == containerName {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

func checkServices(t *testing.T, p product, m manifests) {
	deployed := map[string]string{}
	for _, d := range m.deployments {
		c := container(d)
		if c == nil || len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("Deployment %s: want exactly one container named %q", d.Name, containerName)
			continue
		}
		svc := serviceOf(d)
		switch {
		case svc == "":
			t.Errorf("Deployment %s: command %q %q, want the image's entrypoint with args [run SERVICE]", d.Name, c.Command, c.Args)
			continue
		case !slices.Contains(p.services, svc):
			t.Errorf("Deployment %s runs %q, which switchboard does not know (its services: %s)", d.Name, svc, strings.Join(p.services, ", "))
		case deployed[svc] != "":
			t.Errorf("Deployments %s and %s both run %s", deployed[svc], d.Name, svc)
		}
		deployed[svc] = d.Name
		// The names an operator greps for follow the service.
		if want := "switchboard-" + svc; d.Name != want {
			t.Errorf("Deployment %s runs %s: name it %s", d.Name, svc, want)
		}
		if got := d.Spec.Template.Labels["app.kubernetes.io/component"]; got != svc {
			t.Errorf("Deployment %s runs %s but its pods have app.kubernetes.io/component=%q", d.Name, svc, got)
		}
	}
	for _, svc := range p.services {
		if deployed[svc] == "" {
			t.Errorf("switchboard runs service %q but no Deployment does: copy deploy/kubernetes/base/orders to base/%s, "+
				"replace orders by %s in it, list it in base/kustomization.yaml and add its %s.nk to the Secret "+
				"(docs/operations.md, \"Adding a service\")", svc, svc, svc, svc)
		}
	}
}

func checkImage(t *testing.T, m manifests, released bool) {
	images := map[string][]string{}
	for _, d := range m.deployments {
		for _, c := range slices.Concat(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers) {
			images[c.Image] = append(images[c.Image], d.Name+"/"+c.Name)
		}
	}
	if len(images) != 1 {
		t.Fatalf("want one image for every service, got %v", images)
	}
	for image := range images {
		if !released {
			continue
		}
		// A released image: a registry, and a tag or digest that is not latest.
		name, tag, _ := strings.Cut(image, ":")
		if !strings.Contains(name, "/") || (tag == "" && !strings.Contains(image, "@sha256:")) || tag == "latest" {
			t.Errorf("image %q: want REGISTRY/NAME:VERSION or @sha256:…", image)
		}
	}
}

// checkReferences checks that every Secret, ConfigMap and ServiceAccount a
// pod uses exists with the keys it reads, and that every Secret key is
// used by some pod.
func checkReferences(t *testing.T, m manifests) {
	used := map[string]bool{}
	secretKey := func(where, name, key string, optional *bool) {
		s, ok := m.secrets[name]
		switch {
		case !ok:
			t.Errorf("%s: no Secret %q", where, name)
		case key != "":
			if _, ok := s.Data[key]; !ok && (optional == nil || !*optional) {
				t.Errorf("%s: Secret %s has no key %q", where, name, key)
			}
			used[name+"/"+key] = true
		default:
			for k := range s.Data {
				used[name+"/"+k] = true
			}
		}
	}
	configKey := func(where, name, key string) {
		c, ok := m.configMaps[name]
		if !ok {
			t.Errorf("%s: no ConfigMap %q", where, name)
			return
		}
		if _, ok := c.Data[key]; key != "" && !ok {
			t.Errorf("%s: ConfigMap %s has no key %q", where, name, key)
		}
	}
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		if _, ok := m.serviceAccounts[spec.ServiceAccountName]; !ok {
			t.Errorf("Deployment %s: no ServiceAccount %q", d.Name, spec.ServiceAccountName)
		}
		for _, v := range spec.Volumes {
			where := fmt.Sprintf("Deployment %s volume %s", d.Name, v.Name)
			switch {
			case v.Secret != nil:
				if len(v.Secret.Items) == 0 {
					secretKey(where, v.Secret.SecretName, "", v.Secret.Optional)
				}
				for _, it := range v.Secret.Items {
					secretKey(where, v.Secret.SecretName, it.Key, v.Secret.Optional)
				}
			case v.ConfigMap != nil:
				for _, it := range v.ConfigMap.Items {
					configKey(where, v.ConfigMap.Name, it.Key)
				}
			}
		}
		for _, c := range spec.Containers {
			for _, ef := range c.EnvFrom {
				where := fmt.Sprintf("Deployment %s envFrom", d.Name)
				if ef.SecretRef != nil {
					secretKey(where, ef.SecretRef.Name, "", ef.SecretRef.Optional)
				}
				if ef.ConfigMapRef != nil {
					configKey(where, ef.ConfigMapRef.Name, "")
				}
			}
			for _, e := range c.Env {
				where := fmt.Sprintf("Deployment %s env %s", d.Name, e.Name)
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					secretKey(where, r.Name, r.Key, r.Optional)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					configKey(where, r.Name, r.Key)
				}
			}
		}
	}
	for name, s := range m.secrets {
		for k := range s.Data {
			if !used[name+"/"+k] {
				t.Errorf("Secret %s key %q is used by no Deployment", name, k)
			}
		}
	}
}

// checkSettings works out the environment the container gets, checks that
// every variable is a setting of the binary (or of the Go runtime), and
// runs `switchboard config` with it, with the mounted files in place, so
// that the binary itself accepts every value. It returns the effective
// settings by name.
func checkSettings(t *testing.T, p product, m manifests, d *appsv1.Deployment) map[string]string {
	c := container(d)
	if c == nil {
		t.Fatalf("no container %q", containerName)
	}
	env := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := env[name]; !ok {
			order = append(order, name)
		}
		env[name] = value
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			for k, v := range m.configMaps[ef.ConfigMapRef.Name].Data {
				set(ef.Prefix+k, v)
			}
		}
		if ef.SecretRef != nil {
			for k, v := range m.secrets[ef.SecretRef.Name].Data {
				set(ef.Prefix+k, string(v))
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			set(e.Name, string(m.secrets[r.Name].Data[r.Key]))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			set(e.Name, m.configMaps[r.Name].Data[r.Key])
		case e.ValueFrom.ResourceFieldRef != nil:
			r := e.ValueFrom.ResourceFieldRef
			q, ok := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(r.Resource, "limits."))]
			if !ok {
				t.Errorf("env %s: from %s, which is not set", e.Name, r.Resource)
			}
			set(e.Name, strconv.FormatInt(q.Value(), 10))
		default:
			t.Errorf("env %s: a source this test does not check", e.Name)
		}
	}

	files := mountedFiles(t, m, d)
	dir := t.TempDir()
	var osEnv []string
	for _, name := range order {
		value := env[name]
		setting, known := p.settings[name]
		switch {
		case known:
		case slices.Contains(runtimeEnv, name):
		case pendingSettings[name] != "":
			t.Logf("env %s: not a setting of switchboard yet, pending: %s", name, pendingSettings[name])
		default:
			t.Errorf("env %s: switchboard has no such setting (switchboard run --help lists them)", name)
		}
		if setting.arg == "path" && value != "" {
			// A file must be one the pod has mounted; the binary gets a
			// copy with the same content.
			content, ok := files[value]
			if !ok {
				t.Errorf("env %s=%s: no volume mounts that file", name, value)
				continue
			}
			local := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(value, "/"), "/", "_"))
			if err := os.WriteFile(local, content, 0o600); err != nil {
				t.Fatal(err)
			}
			value = local
		}
		osEnv = append(osEnv, name+"="+value)
	}
	values, sources := effectiveConfig(t, p, osEnv)
	for _, name := range order {
		s, ok := p.settings[name]
		if !ok || env[name] == "" {
			continue
		}
		if got := sources[s.name]; got != "env "+name {
			t.Errorf("env %s: switchboard config says %s comes from %q", name, s.name, got)
		}
	}
	return values
}

// mountedFiles returns, by path in the container, the content of every
// file the pod mounts from a Secret or ConfigMap, and checks that the
// pod's user can read it.
func mountedFiles(t *testing.T, m manifests, d *appsv1.Deployment) map[string][]byte {
	spec := d.Spec.Template.Spec
	files := map[string][]byte{}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range container(d).VolumeMounts {
		v := volumes[vm.Name]
		if v.Secret == nil {
			continue
		}
		data := m.secrets[v.Secret.SecretName].Data
		mode := int32(0o644)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		items := v.Secret.Items
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			mode := mode
			if it.Mode != nil {
				mode = *it.Mode
			}
			// Secret files belong to root, group fsGroup when set.
			readable := mode&0o004 != 0 || mode&0o040 != 0 && spec.SecurityContext != nil && spec.SecurityContext.FSGroup != nil
			if !readable {
				t.Errorf("volume %s: %s has mode %#o, which the pod's non-root user cannot read (set fsGroup or the mode)", v.Name, it.Path, mode)
			}
			files[filepath.Join(vm.MountPath, it.Path)] = data[it.Key]
		}
	}
	return files
}

// checkPorts checks that the ops server listens on every interface on the
// port the container declares, which is the binary's default, and that the
// probes and the scrape annotations use it. It adds their paths to served.
func checkPorts(t *testing.T, p product, d *appsv1.Deployment, cfg map[string]string, served map[string]int) {
	c := container(d)
	host, port, err := net.SplitHostPort(cfg["http-listen"])
	if err != nil {
		t.Fatalf("http-listen %q: %v", cfg["http-listen"], err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("http-listen is %s: in a pod it must listen on every interface (:PORT), or the kubelet cannot probe it", cfg["http-listen"])
	}
	_, defPort, _ := net.SplitHostPort(p.defaults["http-listen"])
	if port != defPort {
		t.Errorf("http-listen port %s, want the default %s (docs and dashboards assume it)", port, defPort)
	}
	var ops int32
	for _, cp := range c.Ports {
		if cp.Name == opsPortName {
			ops = cp.ContainerPort
		}
	}
	if strconv.Itoa(int(ops)) != port {
		t.Errorf("container port %q is %d, but the ops server listens on %s", opsPortName, ops, port)
	}
	resolves := func(p intstr.IntOrString) bool {
		return p.Type == intstr.String && p.StrVal == opsPortName || p.Type == intstr.Int && p.IntVal == ops
	}
	for _, pr := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet of %s", pr.kind, pr.path)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path || !resolves(g.Port) {
			t.Errorf("%s: GET %s on port %s, want %s on %q (%d)", pr.kind, g.Path, g.Port.String(), pr.path, opsPortName, ops)
		}
		served[g.Path] = 0
	}
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 60 {
		t.Errorf("startupProbe allows %ds to start; a process waits for NATS before its ops server starts, allow at least 60s", sp.PeriodSeconds*sp.FailureThreshold)
	}

	a := d.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want prometheus.io/scrape=true, port=%s, path=/metrics", a, port)
	}
	served[a["prometheus.io/path"]] = 0
}

// checkShutdown checks that Kubernetes waits longer than the binary takes
// to shut down before it kills the pod.
func checkShutdown(t *testing.T, d *appsv1.Deployment, cfg map[string]string) {
	timeout, err := time.ParseDuration(cfg["shutdown-timeout"])
	if err != nil {
		t.Fatalf("shutdown-timeout %q: %v", cfg["shutdown-timeout"], err)
	}
	spec := d.Spec.Template.Spec
	var grace int64 = corev1.DefaultTerminationGracePeriodSeconds
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	need := timeout
	if ps := container(d).Lifecycle; ps != nil && ps.PreStop != nil && ps.PreStop.Sleep != nil {
		need += time.Duration(ps.PreStop.Sleep.Seconds) * time.Second
	}
	// A margin for the process to exit after its own timeout.
	if time.Duration(grace)*time.Second < need+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d: want at least %v (shutdown-timeout %v, preStop, 5s margin)", grace, need+5*time.Second, timeout)
	}
}

func checkResources(t *testing.T, d *appsv1.Deployment) {
	r := container(d).Resources
	for _, want := range []struct {
		list corev1.ResourceList
		kind string
		name corev1.ResourceName
	}{
		{r.Requests, "requests", corev1.ResourceCPU},
		{r.Requests, "requests", corev1.ResourceMemory},
		{r.Limits, "limits", corev1.ResourceMemory},
	} {
		if q, ok := want.list[want.name]; !ok || q.IsZero() {
			t.Errorf("resources.%s.%s not set", want.kind, want.name)
		}
	}
	if lim, req := r.Limits[corev1.ResourceMemory], r.Requests[corev1.ResourceMemory]; lim.Cmp(req) < 0 {
		t.Errorf("memory limit %s below the request %s", lim.String(), req.String())
	}
}

// checkSecurity checks what the restricted Pod Security Standard asks, and
// that the pods run as the image's user.
func checkSecurity(t *testing.T, m manifests, uid, gid int64) {
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		psc := spec.SecurityContext
		if psc == nil {
			t.Errorf("%s: no pod securityContext", d.Name)
			continue
		}
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: runAsNonRoot not true", d.Name)
		}
		if psc.RunAsUser == nil || *psc.RunAsUser != uid || psc.RunAsGroup == nil || *psc.RunAsGroup != gid {
			t.Errorf("%s: want runAsUser %d and runAsGroup %d, the image's USER", d.Name, uid, gid)
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile not RuntimeDefault", d.Name)
		}
		if a := spec.AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("%s: automountServiceAccountToken not false (the services never call the API)", d.Name)
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("%s: uses host namespaces", d.Name)
		}
		for _, c := range spec.Containers {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s/%s: no securityContext", d.Name, c.Name)
				continue
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s/%s: allowPrivilegeEscalation not false", d.Name, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: readOnlyRootFilesystem not true", d.Name, c.Name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s/%s: privileged", d.Name, c.Name)
			}
			if caps := sc.Capabilities; caps == nil || !slices.Contains(caps.Drop, "ALL") || len(caps.Add) > 0 {
				t.Errorf("%s/%s: capabilities must drop ALL and add none", d.Name, c.Name)
			}
		}
	}
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// checkPDBs checks that each Deployment's pods are covered by exactly one
// PodDisruptionBudget, which selects no other Deployment's pods, and that
// it lets a node drain.
func checkPDBs(t *testing.T, m manifests) {
	for _, d := range m.deployments {
		var covering []string
		for _, pdb := range m.pdbs {
			if !selects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			covering = append(covering, pdb.Name)
			for _, other := range m.deployments {
				if other != d && selects(t, pdb.Spec.Selector, other.Spec.Template.Labels) {
					t.Errorf("PodDisruptionBudget %s selects the pods of %s and %s", pdb.Name, d.Name, other.Name)
				}
			}
			if mu := pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 {
				t.Errorf("PodDisruptionBudget %s: want maxUnavailable ≥ 1, so that nodes can drain", pdb.Name)
			}
		}
		if len(covering) != 1 {
			t.Errorf("Deployment %s: covered by PodDisruptionBudgets %v, want exactly one", d.Name, covering)
		}
	}
}

// checkHPAs checks that each Deployment is scaled by one autoscaler with at
// least 2 replicas (so that the PDB's one unavailable leaves one serving)
// and does not fix a replica count the autoscaler would fight.
func checkHPAs(t *testing.T, m manifests) {
	for _, d := range m.deployments {
		var scaling []string
		for _, h := range m.hpas {
			ref := h.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || ref.Name != d.Name {
				continue
			}
			scaling = append(scaling, h.Name)
			if ref.APIVersion != "apps/v1" {
				t.Errorf("HorizontalPodAutoscaler %s: scaleTargetRef apiVersion %q, want apps/v1", h.Name, ref.APIVersion)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HorizontalPodAutoscaler %s: want 2 ≤ minReplicas ≤ maxReplicas", h.Name)
			}
			if len(h.Spec.Metrics) == 0 {
				t.Errorf("HorizontalPodAutoscaler %s: no metrics", h.Name)
			}
		}
		if len(scaling) != 1 {
			t.Errorf("Deployment %s: scaled by %v, want exactly one HorizontalPodAutoscaler", d.Name, scaling)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas; leave it to the autoscaler", d.Name)
		}
	}
}

// checkNetworkPolicies checks that every pod is under a default deny and
// may still reach DNS and NATS, and be scraped on its ops port.
func checkNetworkPolicies(t *testing.T, p product, m manifests) {
	natsPort := ""
	for _, cm := range m.configMaps {
		if raw := cm.Data["SWITCHBOARD_NATS_URL"]; raw != "" {
			u, err := url.Parse(strings.Split(raw, ",")[0])
			if err != nil {
				t.Fatal(err)
			}
			natsPort = u.Port()
		}
	}
	if natsPort == "" {
		t.Fatal("no ConfigMap sets SWITCHBOARD_NATS_URL with a port")
	}
	allows := func(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port string, name string) bool {
		for _, pp := range ports {
			if pp.Protocol != nil && *pp.Protocol != proto {
				continue
			}
			if pp.Port == nil || pp.Port.String() == port || name != "" && pp.Port.String() == name {
				return true
			}
		}
		return false
	}
	for _, d := range m.deployments {
		var denyIn, denyOut, dns, nats, scrape bool
		var ops string
		for _, cp := range container(d).Ports {
			if cp.Name == opsPortName {
				ops = strconv.Itoa(int(cp.ContainerPort))
			}
		}
		for _, np := range m.netpols {
			if !selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
				continue
			}
			for _, pt := range np.Spec.PolicyTypes {
				denyIn = denyIn || pt == networkingv1.PolicyTypeIngress
				denyOut = denyOut || pt == networkingv1.PolicyTypeEgress
			}
			for _, e := range np.Spec.Egress {
				dns = dns || allows(e.Ports, corev1.ProtocolUDP, "53", "")
				nats = nats || allows(e.Ports, corev1.ProtocolTCP, natsPort, "") && len(e.To) > 0
			}
			for _, in := range np.Spec.Ingress {
				scrape = scrape || allows(in.Ports, corev1.ProtocolTCP, ops, opsPortName)
			}
		}
		for what, ok := range map[string]bool{
			"a policy of type Ingress (default deny in)": denyIn,
			"a policy of type Egress (default deny out)": denyOut,
			"egress to DNS (UDP 53)":                     dns,
			"egress to NATS (TCP " + natsPort + ")":      nats,
			"ingress to the ops port " + ops:             scrape,
		} {
			if !ok {
				t.Errorf("Deployment %s: no NetworkPolicy gives its pods %s", d.Name, what)
			}
		}
		// A Service in front of the pods is useless if nothing may reach
		// the port it targets.
		for _, svc := range m.services {
			if ds := selected(t, m, svc); len(ds) != 1 || ds[0] != d {
				continue
			}
			for _, sp := range svc.Spec.Ports {
				port := targetPort(d, sp.TargetPort)
				var in bool
				for _, np := range m.netpols {
					if !selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
						continue
					}
					for _, rule := range np.Spec.Ingress {
						in = in || allows(rule.Ports, corev1.ProtocolTCP, strconv.Itoa(int(port)), sp.TargetPort.String())
					}
				}
				if !in {
					t.Errorf("Deployment %s: Service %s targets port %d, but no NetworkPolicy lets traffic in on it", d.Name, svc.Name, port)
				}
			}
		}
	}
}

// checkNamespace checks that an overlay puts everything into one namespace
// that enforces the restricted Pod Security Standard.
func checkNamespace(t *testing.T, m manifests) {
	if len(m.namespaces) != 1 {
		t.Fatalf("want one Namespace, got %d", len(m.namespaces))
	}
	ns := m.namespaces[0]
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace %s: pod-security.kubernetes.io/enforce=%q, want restricted", ns.Name, got)
	}
	for id, got := range m.namespaced {
		if got != ns.Name {
			t.Errorf("%s: namespace %q, want %s", id, got, ns.Name)
		}
	}
}

// targetPort returns the container port of d that a Service's targetPort
// names, or 0.
func targetPort(d *appsv1.Deployment, tp intstr.IntOrString) int32 {
	for _, cp := range container(d).Ports {
		if tp.Type == intstr.String && cp.Name == tp.StrVal || tp.Type == intstr.Int && cp.ContainerPort == tp.IntVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// selected returns the Deployments whose pods a Service selects.
func selected(t *testing.T, m manifests, svc *corev1.Service) []*appsv1.Deployment {
	var ds []*appsv1.Deployment
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	for _, d := range m.deployments {
		if selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
			ds = append(ds, d)
		}
	}
	return ds
}

// checkServiceObjects checks that every Service sends its traffic to the
// pods of exactly one Deployment, on a port their container declares.
func checkServiceObjects(t *testing.T, m manifests) {
	for _, svc := range m.services {
		ds := selected(t, m, svc)
		if len(ds) != 1 {
			t.Errorf("Service %s selects the pods of %d Deployments, want exactly one", svc.Name, len(ds))
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if targetPort(ds[0], sp.TargetPort) == 0 {
				t.Errorf("Service %s port %s: targetPort %s is no port of %s's container", svc.Name, sp.Name, sp.TargetPort.String(), ds[0].Name)
			}
		}
	}
}

// checkGateway checks that the gateway listens on every interface, on the
// port its container declares and its Service targets, and that it does
// not run without authentication: in a released overlay it has keys.
func checkGateway(t *testing.T, m manifests, d *appsv1.Deployment, cfg map[string]string, released bool) {
	if serviceOf(d) != "gateway" {
		return
	}
	host, port, err := net.SplitHostPort(cfg["gateway-listen"])
	if err != nil {
		t.Fatalf("gateway-listen %q: %v", cfg["gateway-listen"], err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("gateway-listen is %s: in a pod it must listen on every interface (:PORT)", cfg["gateway-listen"])
	}
	if a := cfg["gateway-auth"]; a == "none" {
		t.Errorf("gateway-auth is %q: a deployed gateway must authenticate its callers", a)
	}
	if released && cfg["gateway-api-keys"] == "" && cfg["gateway-jwt-secret"] == "" && cfg["gateway-jwt-public-key"] == "" {
		t.Error("no gateway-api-keys and no JWT key: run gateway would refuse to start")
	}
	var fronted bool
	for _, svc := range m.services {
		if ds := selected(t, m, svc); len(ds) != 1 || ds[0] != d {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			fronted = true
			if got := targetPort(d, sp.TargetPort); strconv.Itoa(int(got)) != port {
				t.Errorf("Service %s targets port %d, but the gateway listens on %s", svc.Name, got, port)
			}
		}
	}
	if !fronted {
		t.Errorf("Deployment %s: no Service sends HTTP to the gateway", d.Name)
	}
	if lc := container(d).Lifecycle; lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil || lc.PreStop.Sleep.Seconds < 1 {
		t.Errorf("Deployment %s: want a preStop sleep, so that endpoints drop a pod before it stops listening", d.Name)
	}
}
