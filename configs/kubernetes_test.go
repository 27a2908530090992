package configs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The Kubernetes builds: the base (CPU agents) and the GPU overlays.
var variants = []struct{ name, dir string }{
	{"cpu", "kubernetes"},
	{"nvidia", "kubernetes/overlays/nvidia"},
	{"intel", "kubernetes/overlays/intel"},
}

// podMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1, not in k8s.io/api) the manifests use; a
// field outside it fails the strict decoding.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel            string               `json:"jobLabel,omitempty"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// newObject returns the Go type of an apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1 PodMonitor":
		return &podMonitor{}, nil
	}
	return nil, fmt.Errorf("%s %s: a kind this test does not decode", apiVersion, kind)
}

// decode decodes a document strictly into its Go type: a field the type
// does not have is an error, in any letter case (encoding/json would take
// clusterIp for clusterIP; the API server would not).
func decode(d document) (any, error) {
	apiVersion, _ := d.obj["apiVersion"].(string)
	obj, err := newObject(apiVersion, d.kind())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.source, err)
	}
	js, err := json.Marshal(d.obj)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(js, obj); err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", d.source, d.kind(), d.name(), err)
	}
	back, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var out any
	if err := decodeJSON(back, &out); err != nil {
		return nil, err
	}
	if err := sameFields(any(d.obj), out, ""); err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", d.source, d.kind(), d.name(), err)
	}
	return obj, nil
}

// sameFields checks that every field set in the document survives a
// round trip through its Go type under the same name.
func sameFields(in, out any, path string) error {
	switch in := in.(type) {
	case map[string]any:
		o, _ := out.(map[string]any)
		var errs []error
		for k, v := range in {
			ov, ok := o[k]
			if !ok {
				if !zero(v) {
					errs = append(errs, fmt.Errorf("unknown field %q", strings.TrimPrefix(path+"."+k, ".")))
				}
				continue
			}
			errs = append(errs, sameFields(v, ov, path+"."+k))
		}
		return errors.Join(errs...)
	case []any:
		o, _ := out.([]any)
		if len(o) != len(in) {
			return nil
		}
		var errs []error
		for i := range in {
			errs = append(errs, sameFields(in[i], o[i], fmt.Sprintf("%s[%d]", path, i)))
		}
		return errors.Join(errs...)
	}
	return nil
}

func zero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return v == ""
	case json.Number:
		return v == "0"
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// bundle is one build, decoded.
type bundle struct {
	variant   string
	namespace string
	ns        *corev1.Namespace
	secrets   map[string]*corev1.Secret
	configs   map[string]*corev1.ConfigMap
	services  map[string]*corev1.Service
	server    *appsv1.StatefulSet
	agent     *appsv1.DaemonSet
	pdb       *policyv1.PodDisruptionBudget
}

// loadBundle builds and decodes the kustomization in dir.
func loadBundle(variant, dir string) (*bundle, error) {
	docs, err := build(dir)
	if err != nil {
		return nil, err
	}
	b := &bundle{variant: variant, secrets: map[string]*corev1.Secret{},
		configs: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{}}
	var errs []error
	seen := map[string]bool{}
	for _, d := range docs {
		key := d.kind() + "/" + d.name()
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s: %s twice", d.source, key))
		}
		seen[key] = true
		obj, err := decode(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			b.ns = o
		case *corev1.Secret:
			b.secrets[o.Name] = o
		case *corev1.ConfigMap:
			b.configs[o.Name] = o
		case *corev1.Service:
			b.services[o.Name] = o
		case *appsv1.StatefulSet:
			b.server = o
		case *appsv1.DaemonSet:
			b.agent = o
		case *policyv1.PodDisruptionBudget:
			b.pdb = o
		default:
			errs = append(errs, fmt.Errorf("%s: %s does not belong in the base", d.source, key))
		}
	}
	if b.ns == nil || b.server == nil || b.agent == nil || b.pdb == nil {
		errs = append(errs, fmt.Errorf("%s: want a Namespace, the server StatefulSet, the agent DaemonSet and a PodDisruptionBudget", dir))
	} else {
		b.namespace = b.ns.Name
	}
	return b, errors.Join(errs...)
}

func mustBundle(t *testing.T, variant, dir string) *bundle {
	t.Helper()
	b, err := loadBundle(variant, dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKubernetes decodes the base and each overlay strictly and checks
// what makes the deployment work: the cluster forms (Parallel pods, the
// same --bootstrap-expect as replicas, --join through the headless
// service that lists pods before they are ready), probes that never
// restart servers for a lost leader, GPUs in limits, drains that fit the
// grace period, one image, every secret and flag that is referenced
// existing, restricted pod security.
func TestKubernetes(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			b := mustBundle(t, v.name, v.dir)
			if err := checkBundle(t, b); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestKubernetesSecretsEmpty keeps credentials out of the repository: the
// Secret ships with every value empty, which servers and agents refuse.
func TestKubernetesSecretsEmpty(t *testing.T) {
	b := mustBundle(t, "cpu", "kubernetes")
	for _, s := range b.secrets {
		for _, k := range []string{"ITTYBIT_API_KEY", "ITTYBIT_NODE_TOKEN", "ITTYBIT_SEAL_KEY"} {
			if _, ok := s.StringData[k]; !ok {
				t.Errorf("Secret %s has no %s", s.Name, k)
			}
		}
		for k, v := range s.StringData {
			if v != "" {
				t.Errorf("Secret %s: %s is set in the repository; ship it empty", s.Name, k)
			}
		}
		if len(s.Data) > 0 {
			t.Errorf("Secret %s: data is set in the repository; ship stringData empty", s.Name)
		}
	}
}

// TestKubernetesPodMonitors checks the Prometheus Operator's PodMonitors
// against the pods they scrape and the job names of configs/alerts.yml.
func TestKubernetesPodMonitors(t *testing.T) {
	b := mustBundle(t, "cpu", "kubernetes")
	pms, err := loadPodMonitors("kubernetes/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPodMonitors(b, pms, string(mustRead(t, "alerts.yml"))); err != nil {
		t.Error(err)
	}
}

func loadPodMonitors(dir string) ([]*podMonitor, error) {
	docs, err := build(dir)
	if err != nil {
		return nil, err
	}
	var out []*podMonitor
	for _, d := range docs {
		obj, err := decode(d)
		if err != nil {
			return nil, err
		}
		pm, ok := obj.(*podMonitor)
		if !ok {
			return nil, fmt.Errorf("%s: %s: only PodMonitors belong in monitoring/", d.source, d.kind())
		}
		out = append(out, pm)
	}
	return out, nil
}

// copyTree copies the folder src into a temporary folder, for a test to
// break a file.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
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

// edit replaces old by new in a file, once; old must be there.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data := string(mustRead(t, path))
	if !strings.Contains(data, old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(data, old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesBrokenFiles feeds broken manifests to the build and the
// strict decoding: each must fail.
func TestKubernetesBrokenFiles(t *testing.T) {
	cases := []struct {
		name, file, old, new, dir, want string
	}{
		{"unknown field", "base/server-statefulset.yaml", "  podManagementPolicy: Parallel\n",
			"  podManagementPolicy: Parallel\n  podManagmentPolicy: Parallel\n", "", `unknown field "podManagmentPolicy"`},
		{"duplicate field", "base/server-statefulset.yaml", "  replicas: 3\n", "  replicas: 3\n  replicas: 5\n", "", "duplicate"},
		{"field in the wrong case", "base/server-services.yaml", "clusterIP: None", "clusterIp: None", "", `unknown field "spec.clusterIp"`},
		{"wrong type", "base/server-pdb.yaml", "maxUnavailable: 1", "maxUnavailable: [1]", "", "PodDisruptionBudget"},
		{"unknown kustomize field", "base/kustomization.yaml", "namespace: ittybit\n",
			"namespace: ittybit\ncommonLabels: {a: b}\n", "", `unknown field "commonLabels"`},
		{"missing resource", "base/kustomization.yaml", "  - server-pdb.yaml\n", "  - server-pdp.yaml\n", "", "server-pdp.yaml"},
		{"unknown kind", "base/server-pdb.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", "", "does not decode"},
		// The overlay's JSON patch tests the container's name before it
		// edits containers/0: it must refuse a base that changed.
		{"patch test fails", "base/agent-daemonset.yaml", "        - name: agent\n", "        - name: encoder\n",
			"overlays/nvidia", "test failed"},
		{"patch path missing", "overlays/intel/agent-intel.yaml", "/spec/template/spec/securityContext/supplementalGroups",
			"/spec/template/spec/securityContxt/supplementalGroups", "overlays/intel", "securityContxt"},
		{"patch of nothing", "overlays/nvidia/kustomization.yaml", "name: ittybit-agent", "name: ittybit-agents",
			"overlays/nvidia", "no DaemonSet ittybit-agents to patch"},
		{"monitor field unknown", "monitoring/podmonitors.yaml", "podMetricsEndpoints:", "podMetricEndpoints:",
			"monitoring", `unknown field "podMetricEndpoints"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := copyTree(t, "kubernetes")
			edit(t, filepath.Join(root, c.file), c.old, c.new)
			var err error
			if c.dir == "monitoring" {
				_, err = loadPodMonitors(filepath.Join(root, c.dir))
			} else {
				_, err = loadBundle("cpu", filepath.Join(root, c.dir))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestKubernetesBrokenSettings breaks one setting of a decoded build at a
// time: the checks must notice each.
func TestKubernetesBrokenSettings(t *testing.T) {
	server := func(b *bundle) *corev1.Container { return &b.server.Spec.Template.Spec.Containers[0] }
	agent := func(b *bundle) *corev1.Container { return &b.agent.Spec.Template.Spec.Containers[0] }
	setArg := func(c *corev1.Container, flag, value string) {
		for i, a := range c.Args {
			if strings.HasPrefix(a, "--"+flag+"=") {
				c.Args[i] = "--" + flag + "=" + value
				return
			}
		}
		panic("no --" + flag)
	}
	cases := []struct {
		name, variant string
		mutate        func(b *bundle)
		want          string
	}{
		{"headless service hides unready pods", "cpu", func(b *bundle) {
			b.services["ittybit-server-internal"].Spec.PublishNotReadyAddresses = false
		}, "publishNotReadyAddresses"},
		{"ordered pod start", "cpu", func(b *bundle) {
			b.server.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}, "Parallel"},
		{"replicas and bootstrap-expect differ", "cpu", func(b *bundle) {
			five := int32(5)
			b.server.Spec.Replicas = &five
		}, "--bootstrap-expect"},
		{"join through the client service", "cpu", func(b *bundle) {
			setArg(server(b), "join", "dns+srv://_http._tcp.ittybit")
		}, "headless"},
		{"join on the raft port", "cpu", func(b *bundle) {
			setArg(server(b), "join", "dns://ittybit-server-internal:9090")
		}, "API port"},
		{"readiness on healthz", "cpu", func(b *bundle) {
			server(b).ReadinessProbe.HTTPGet.Path = "/healthz"
		}, "readiness"},
		{"liveness needs a leader", "cpu", func(b *bundle) {
			server(b).LivenessProbe.HTTPGet.Path = "/readyz"
		}, "liveness"},
		{"probe on the raft port", "cpu", func(b *bundle) {
			server(b).LivenessProbe.HTTPGet.Port.StrVal = "raft"
		}, "port"},
		{"node id not the pod name", "cpu", func(b *bundle) {
			setArg(server(b), "node-id", "server")
		}, "--node-id"},
		{"advertise an unset variable", "cpu", func(b *bundle) {
			setArg(server(b), "raft-advertise", "$(POD_ADDRESS):9090")
		}, "POD_ADDRESS"},
		{"unknown flag", "cpu", func(b *bundle) {
			server(b).Args = append(server(b).Args, "--bootstrap-expected=3")
		}, "unknown flag"},
		{"unknown ITTYBIT_ variable", "cpu", func(b *bundle) {
			b.configs["ittybit"].Data["ITTYBIT_STORAGES"] = "s3://x/y"
		}, "ITTYBIT_STORAGES"},
		{"agent sees the API key", "cpu", func(b *bundle) {
			agent(b).EnvFrom = append(agent(b).EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "ittybit"}}})
		}, "ITTYBIT_API_KEY"},
		{"missing secret key", "cpu", func(b *bundle) {
			envVar(agent(b), "ITTYBIT_NODE_TOKEN").ValueFrom.SecretKeyRef.Key = "ITTYBIT_NODE_TOKEM"
		}, "ITTYBIT_NODE_TOKEM"},
		{"missing config map", "cpu", func(b *bundle) {
			server(b).EnvFrom[0].ConfigMapRef.Name = "ittybit-config"
		}, "ittybit-config"},
		{"two images", "cpu", func(b *bundle) {
			agent(b).Image = "ghcr.io/ittybit-oss/ittybit:v0.1.0"
		}, "image"},
		{"drain longer than the grace period", "cpu", func(b *bundle) {
			setArg(agent(b), "drain-timeout", "10m")
		}, "terminationGracePeriodSeconds"},
		{"PDB selects nothing", "cpu", func(b *bundle) {
			b.pdb.Spec.Selector.MatchLabels = map[string]string{"app.kubernetes.io/name": "ittybit"}
		}, "PodDisruptionBudget"},
		{"selector misses the pods", "cpu", func(b *bundle) {
			b.agent.Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "agent"
		}, "selector"},
		{"root", "cpu", func(b *bundle) {
			f := false
			b.server.Spec.Template.Spec.SecurityContext.RunAsNonRoot = &f
		}, "runAsNonRoot"},
		{"CPU agent with GPUs", "cpu", func(b *bundle) {
			envVar(agent(b), "NVIDIA_VISIBLE_DEVICES").Value = "all"
		}, "NVIDIA_VISIBLE_DEVICES"},
		{"GPU in requests only", "nvidia", func(b *bundle) {
			r := &agent(b).Resources
			r.Requests["nvidia.com/gpu"] = r.Limits["nvidia.com/gpu"]
			delete(r.Limits, "nvidia.com/gpu")
		}, "nvidia.com/gpu"},
		{"no video capability", "nvidia", func(b *bundle) {
			envVar(agent(b), "NVIDIA_DRIVER_CAPABILITIES").Value = "compute,utility"
		}, "video"},
		{"no GPU toleration", "nvidia", func(b *bundle) {
			b.agent.Spec.Template.Spec.Tolerations = nil
		}, "toleration"},
		{"no render group", "intel", func(b *bundle) {
			b.agent.Spec.Template.Spec.SecurityContext.SupplementalGroups = nil
		}, "supplementalGroups"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := "kubernetes"
			if c.variant != "cpu" {
				dir = "kubernetes/overlays/" + c.variant
			}
			b := mustBundle(t, c.variant, dir)
			c.mutate(b)
			err := checkBundle(t, b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestKubernetesBrokenMonitors breaks the PodMonitors' links to the pods.
func TestKubernetesBrokenMonitors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(pms []*podMonitor)
		want   string
	}{
		{"port the pods lack", func(pms []*podMonitor) { pms[0].Spec.PodMetricsEndpoints[0].Port = "metrics" }, "port"},
		{"selects no pod", func(pms []*podMonitor) {
			pms[1].Spec.Selector.MatchLabels = map[string]string{"app": "agent"}
		}, "selects"},
		{"job name the alerts do not use", func(pms []*podMonitor) { pms[0].Spec.JobLabel = "app.kubernetes.io/part-of" }, "alerts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustBundle(t, "cpu", "kubernetes")
			pms, err := loadPodMonitors("kubernetes/monitoring")
			if err != nil {
				t.Fatal(err)
			}
			c.mutate(pms)
			err = checkPodMonitors(b, pms, string(mustRead(t, "alerts.yml")))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestKubernetesMatchesKustomize builds every kustomization with kubectl's
// own kustomize, where kubectl is installed, and compares the objects
// with this test's build: the checks above look at what `kubectl apply
// -k` would apply.
func TestKubernetesMatchesKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the build is not compared with kustomize's (the other tests still check it)")
	}
	dirs := []string{"kubernetes", "kubernetes/base", "kubernetes/monitoring"}
	for _, v := range variants[1:] {
		dirs = append(dirs, v.dir)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					err = fmt.Errorf("%w: %s", err, ee.Stderr)
				}
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			theirs, err := splitDocuments("kubectl kustomize "+dir, out)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := build(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameObjects(ours, theirs); err != nil {
				t.Error(err)
			}
			// And the comparison notices a difference.
			ours[0].obj["metadata"].(map[string]any)["namespace"] = "elsewhere"
			if err := sameObjects(ours, theirs); err == nil || !strings.Contains(err.Error(), "differs") {
				t.Errorf("a changed namespace went unnoticed: %v", err)
			}
		})
	}
}

// sameObjects compares two builds object by object.
func sameObjects(ours, theirs []document) error {
	index := func(ds []document) (map[string]any, error) {
		m := map[string]any{}
		for _, d := range ds {
			js, err := json.Marshal(d.obj)
			if err != nil {
				return nil, err
			}
			var v any
			if err := decodeJSON(js, &v); err != nil {
				return nil, err
			}
			m[d.kind()+"/"+d.name()] = v
		}
		return m, nil
	}
	a, err := index(ours)
	if err != nil {
		return err
	}
	b, err := index(theirs)
	if err != nil {
		return err
	}
	var errs []error
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: kustomize does not make it", k))
		case !reflect.DeepEqual(v, w):
			ja, _ := json.Marshal(v)
			jb, _ := json.Marshal(w)
			errs = append(errs, fmt.Errorf("%s differs:\nthis test: %s\nkustomize: %s", k, ja, jb))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			errs = append(errs, fmt.Errorf("%s: only kustomize makes it", k))
		}
	}
	return errors.Join(errs...)
}
