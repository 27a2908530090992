package configs

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ittybit-oss/ittybit/internal/discover"
)

// The names the manifests and the README agree on.
const (
	headlessName = "ittybit-server-internal"
	clientName   = "ittybit"
	agentOptIn   = "ittybit-oss.github.io/agent"
	httpPort     = 8080
	raftPort     = 9090
)

// checkBundle runs every check on a build and reports all problems.
func checkBundle(t *testing.T, b *bundle) error {
	t.Helper()
	return errors.Join(
		checkNamespace(b),
		checkServices(b),
		checkServer(b),
		checkPDB(b),
		checkAgent(b),
		checkPod(t, b, "StatefulSet "+b.server.Name, &b.server.Spec.Template, "server"),
		checkPod(t, b, "DaemonSet "+b.agent.Name, &b.agent.Spec.Template, "agent"),
	)
}

func checkNamespace(b *bundle) error {
	var errs []error
	if b.ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		errs = append(errs, fmt.Errorf("Namespace %s: want pod-security.kubernetes.io/enforce: restricted", b.ns.Name))
	}
	metas := []metav1.ObjectMeta{b.server.ObjectMeta, b.agent.ObjectMeta, b.pdb.ObjectMeta}
	for _, s := range b.services {
		metas = append(metas, s.ObjectMeta)
	}
	for _, s := range b.secrets {
		metas = append(metas, s.ObjectMeta)
	}
	for _, c := range b.configs {
		metas = append(metas, c.ObjectMeta)
	}
	for _, m := range metas {
		if m.Namespace != b.namespace {
			errs = append(errs, fmt.Errorf("%s is in namespace %q, not %q", m.Name, m.Namespace, b.namespace))
		}
	}
	return errors.Join(errs...)
}

// selects reports whether a label selector picks pods with these labels.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(podLabels))
}

func checkServices(b *bundle) error {
	var errs []error
	pods := b.server.Spec.Template.Labels
	h, c := b.services[headlessName], b.services[clientName]
	if h == nil || c == nil {
		return fmt.Errorf("want the services %s (headless) and %s (clients)", headlessName, clientName)
	}
	if h.Spec.ClusterIP != corev1.ClusterIPNone {
		errs = append(errs, fmt.Errorf("Service %s: clusterIP %q, want None (headless: one DNS record per pod)", h.Name, h.Spec.ClusterIP))
	}
	if !h.Spec.PublishNotReadyAddresses {
		errs = append(errs, fmt.Errorf("Service %s: want publishNotReadyAddresses: true (servers are ready only once they found each other through it)", h.Name))
	}
	if c.Spec.ClusterIP == corev1.ClusterIPNone || c.Spec.PublishNotReadyAddresses {
		errs = append(errs, fmt.Errorf("Service %s: clients need a cluster IP and ready servers only", c.Name))
	}
	for _, s := range []*corev1.Service{h, c} {
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, pods) {
			errs = append(errs, fmt.Errorf("Service %s: selector %v misses the server pods %v", s.Name, s.Spec.Selector, pods))
		}
	}
	want := map[string]int32{"http": httpPort, "raft": raftPort}
	for _, p := range h.Spec.Ports {
		if want[p.Name] != p.Port || containerPort(&b.server.Spec.Template.Spec.Containers[0], p.TargetPort) != p.Port {
			errs = append(errs, fmt.Errorf("Service %s: port %s %d → %s, want http 8080 and raft 9090 to the same container ports", h.Name, p.Name, p.Port, p.TargetPort.String()))
		}
		delete(want, p.Name)
	}
	if len(want) > 0 {
		errs = append(errs, fmt.Errorf("Service %s: no port %v", h.Name, want))
	}
	if len(c.Spec.Ports) != 1 || c.Spec.Ports[0].Port != httpPort || containerPort(&b.server.Spec.Template.Spec.Containers[0], c.Spec.Ports[0].TargetPort) != httpPort {
		errs = append(errs, fmt.Errorf("Service %s: want the one port 8080 to the API", c.Name))
	}
	return errors.Join(errs...)
}

// containerPort resolves a port by name or number against a container.
func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// fieldRef returns the downward-API field an env var of c takes, "" when
// none.
func fieldRef(c *corev1.Container, name string) string {
	if e := envVar(c, name); e != nil && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
		return e.ValueFrom.FieldRef.FieldPath
	}
	return ""
}

func checkServer(b *bundle) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("StatefulSet %s: "+format, append([]any{b.server.Name}, a...)...))
	}
	s := b.server.Spec
	if s.Replicas == nil || *s.Replicas != 3 {
		bad("want 3 replicas")
	}
	if s.PodManagementPolicy != "Parallel" {
		bad("podManagementPolicy %q: want Parallel (no pod is ready before the cluster forms)", s.PodManagementPolicy)
	}
	if s.ServiceName != headlessName {
		bad("serviceName %q: want the headless service %s", s.ServiceName, headlessName)
	}
	if !selects(s.Selector, s.Template.Labels) {
		bad("selector misses its pods' labels %v", s.Template.Labels)
	}
	if len(s.Template.Spec.Containers) != 1 {
		return errors.Join(append(errs, fmt.Errorf("StatefulSet %s: want one container", b.server.Name))...)
	}
	c := &s.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "server" {
		bad("args %q: want `server …`", c.Args)
	}
	if s.Replicas != nil && flagValue(c.Args, "bootstrap-expect") != fmt.Sprint(*s.Replicas) {
		bad("--bootstrap-expect %q: want the replicas, %d", flagValue(c.Args, "bootstrap-expect"), *s.Replicas)
	}
	joins := flagValues(c.Args, "join")
	found := false
	for _, j := range joins {
		tgt, err := discover.Parse(j)
		if err != nil {
			bad("%v", err)
			continue
		}
		if err := joinsHeadless(b, tgt); err != nil {
			bad("--join %s: %v", j, err)
			continue
		}
		found = true
	}
	if !found {
		bad("no --join through the headless service %s (%q)", headlessName, joins)
	}
	if flagValue(c.Args, "node-id") != "$(POD_NAME)" || fieldRef(c, "POD_NAME") != "metadata.name" {
		bad("--node-id must be the pod name ($(POD_NAME) from metadata.name): stable across restarts")
	}
	for _, f := range []string{"http-advertise", "raft-advertise"} {
		host, port, err := net.SplitHostPort(flagValue(c.Args, f))
		want := map[string]string{"http-advertise": fmt.Sprint(httpPort), "raft-advertise": fmt.Sprint(raftPort)}[f]
		if err != nil || host != "$(POD_IP)" || port != want {
			bad("--%s %q: want $(POD_IP):%s", f, flagValue(c.Args, f), want)
		}
	}
	if fieldRef(c, "POD_IP") != "status.podIP" {
		bad("POD_IP must come from status.podIP")
	}
	// The data volume: a claim per pod, mounted where --data points.
	var data string
	for _, vct := range s.VolumeClaimTemplates {
		for _, m := range c.VolumeMounts {
			if m.Name == vct.Name {
				data = m.MountPath
			}
		}
	}
	if data == "" || flagValue(c.Args, "data") != data {
		bad("--data %q is not a volumeClaimTemplate's mount (%q)", flagValue(c.Args, "data"), data)
	}
	// Probes: ready once a leader is known; alive while the process
	// answers, whatever the quorum.
	probe := func(kind string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
			bad("%s probe: want httpGet %s", kind, path)
			return
		}
		if containerPort(c, p.HTTPGet.Port) != httpPort {
			bad("%s probe: port %s is not the API port %d", kind, p.HTTPGet.Port.String(), httpPort)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "/healthz")
	}
	grace := int64(30)
	if p := s.Template.Spec.TerminationGracePeriodSeconds; p != nil {
		grace = *p
	}
	var preStop int64
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	// The pause, a hand-off, 5 s of requests in flight, a leave of up to
	// 30 s with --leave-on-terminate.
	if preStop == 0 || grace < preStop+45 {
		bad("terminationGracePeriodSeconds %d with a preStop sleep of %d s: want a pause, and 45 s after it for the hand-off and a leave", grace, preStop)
	}
	anti := false
	if a := s.Template.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && selects(term.LabelSelector, s.Template.Labels) {
				anti = true
			}
		}
	}
	if !anti {
		bad("want a required pod anti-affinity on kubernetes.io/hostname among the servers")
	}
	return errors.Join(errs...)
}

// joinsHeadless checks that a --join target names the headless service
// and reaches the API port.
func joinsHeadless(b *bundle, t discover.Target) error {
	h := b.services[headlessName]
	name := t.Name
	switch t.Kind {
	case "srv":
		var ok bool
		var port string
		port, name, ok = strings.Cut(strings.TrimPrefix(name, "_"), "._tcp.")
		if !ok {
			return fmt.Errorf("want _PORT._tcp.%s", headlessName)
		}
		for _, p := range h.Spec.Ports {
			if p.Name == port && p.Port != httpPort {
				return fmt.Errorf("SRV port %q is not the API port %d", port, httpPort)
			}
		}
	case "dns":
		if t.Port != fmt.Sprint(httpPort) {
			return fmt.Errorf("port %s is not the API port %d", t.Port, httpPort)
		}
	default:
		return fmt.Errorf("a fixed address: pods come and go; name the headless service %s", headlessName)
	}
	if name != headlessName && name != headlessName+"."+b.namespace && !strings.HasPrefix(name, headlessName+"."+b.namespace+".svc") &&
		name != headlessName+".$(POD_NAMESPACE)" && !strings.HasPrefix(name, headlessName+".$(POD_NAMESPACE).svc") {
		return fmt.Errorf("%q is not the headless service %s", name, headlessName)
	}
	return nil
}

func checkPDB(b *bundle) error {
	var errs []error
	p := b.pdb.Spec
	if p.MaxUnavailable == nil || p.MaxUnavailable.IntValue() != 1 || p.MinAvailable != nil {
		errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: want maxUnavailable: 1 (a quorum of 3 survives one)", b.pdb.Name))
	}
	if !selects(p.Selector, b.server.Spec.Template.Labels) || selects(p.Selector, b.agent.Spec.Template.Labels) {
		errs = append(errs, fmt.Errorf("PodDisruptionBudget %s: its selector must pick the server pods, and only them", b.pdb.Name))
	}
	return errors.Join(errs...)
}

func checkAgent(b *bundle) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("DaemonSet %s: "+format, append([]any{b.agent.Name}, a...)...))
	}
	s := b.agent.Spec
	if !selects(s.Selector, s.Template.Labels) {
		bad("selector misses its pods' labels %v", s.Template.Labels)
	}
	pod := s.Template.Spec
	if len(pod.Containers) != 1 {
		return errors.Join(append(errs, fmt.Errorf("DaemonSet %s: want one container", b.agent.Name))...)
	}
	c := &pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "agent" {
		bad("args %q: want `agent …`", c.Args)
	}
	if pod.NodeSelector[agentOptIn] != "true" {
		bad("nodeSelector must keep the opt-in label %s=true", agentOptIn)
	}
	drain := 30 * time.Second
	if v := flagValue(c.Args, "drain-timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			bad("--drain-timeout %q: %v", v, err)
		}
		drain = d
	}
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	if time.Duration(grace)*time.Second < drain+10*time.Second {
		bad("terminationGracePeriodSeconds %d: want --drain-timeout (%s) and 10 s to hand steps back", grace, drain)
	}
	servers := flagValues(c.Args, "server")
	if len(servers) == 0 {
		bad("no --server")
	}
	for _, v := range servers {
		tgt, err := discover.Parse(v)
		if err != nil {
			bad("%v", err)
			continue
		}
		host, port, _ := net.SplitHostPort(strings.TrimPrefix(tgt.URL, "http://"))
		if tgt.Kind != "url" || port != fmt.Sprint(httpPort) ||
			(host != clientName && host != clientName+"."+b.namespace && !strings.HasPrefix(host, clientName+"."+b.namespace+".svc")) {
			bad("--server %s: want the client service, http://%s:%d (ready servers only)", v, clientName, httpPort)
		}
	}
	gpus := map[string]string{"nvidia": "nvidia.com/gpu", "intel": "gpu.intel.com/i915"}
	for variant, res := range gpus {
		limit, inLimits := c.Resources.Limits[corev1.ResourceName(res)]
		request, inRequests := c.Resources.Requests[corev1.ResourceName(res)]
		switch {
		case variant != b.variant && (inLimits || inRequests):
			bad("a %s agent asks for %s", b.variant, res)
		case variant == b.variant && (!inLimits || limit.Value() < 1):
			bad("want %s in limits (extended resources are limits)", res)
		case variant == b.variant && inRequests && !request.Equal(limit):
			bad("%s: requests differ from limits", res)
		}
		if variant == b.variant && !slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool {
			return t.Key == res && t.Operator == corev1.TolerationOpExists
		}) {
			bad("no toleration of the %s taint", res)
		}
	}
	visible := envVar(c, "NVIDIA_VISIBLE_DEVICES")
	switch b.variant {
	case "nvidia":
		caps := envVar(c, "NVIDIA_DRIVER_CAPABILITIES")
		for _, want := range []string{"compute", "video", "utility"} {
			if caps == nil || !slices.Contains(strings.Split(caps.Value, ","), want) {
				bad("NVIDIA_DRIVER_CAPABILITIES must name %s (video: NVENC/NVDEC; it replaces the default)", want)
			}
		}
		if visible != nil {
			bad("NVIDIA_VISIBLE_DEVICES=%q: the device plugin sets it", visible.Value)
		}
		if pod.NodeSelector["nvidia.com/gpu.present"] != "true" {
			bad("want the nodeSelector nvidia.com/gpu.present=true")
		}
	case "intel":
		if pod.SecurityContext == nil || len(pod.SecurityContext.SupplementalGroups) == 0 {
			bad("want supplementalGroups with the host's render group (the render node is 0660)")
		}
		if pod.NodeSelector["intel.feature.node.kubernetes.io/gpu"] != "true" {
			bad("want the nodeSelector intel.feature.node.kubernetes.io/gpu=true")
		}
	}
	if b.variant != "nvidia" && (visible == nil || visible.Value != "void") {
		bad("NVIDIA_VISIBLE_DEVICES must be void: the image would let the NVIDIA runtime hand every GPU to the pod")
	}
	return errors.Join(errs...)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkPod checks what every pod shares: the image, the restricted Pod
// Security Standard, references to secrets and config maps, the
// ITTYBIT_ variables and the command line.
func checkPod(t *testing.T, b *bundle, what string, tpl *corev1.PodTemplateSpec, command string) error {
	t.Helper()
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{what}, a...)...))
	}
	pod := tpl.Spec
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		bad("enableServiceLinks must be false: the service ittybit would add ITTYBIT_PORT… to the environment ittybit reads")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("automountServiceAccountToken must be false: ittybit never calls the Kubernetes API")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		bad("no host namespaces")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		bad("the pod must set runAsNonRoot: true and a runAsUser other than 0")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("the pod must use the RuntimeDefault seccomp profile")
	}
	for _, v := range pod.Volumes {
		if v.EmptyDir == nil && v.PersistentVolumeClaim == nil && v.Secret == nil && v.ConfigMap == nil && v.Projected == nil && v.DownwardAPI == nil {
			bad("volume %s: a type the restricted Pod Security Standard refuses", v.Name)
		}
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.Image != image {
			bad("container %s: image %q, want %q (one image everywhere)", c.Name, c.Image, image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			(sc.Privileged != nil && *sc.Privileged) || sc.Capabilities == nil ||
			!slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("container %s: want allowPrivilegeEscalation: false, capabilities drop ALL and a read-only root filesystem", c.Name)
		}
		names := map[string]bool{}
		for _, e := range c.Env {
			names[e.Name] = true
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				if s := b.secrets[r.Name]; s == nil {
					bad("env %s: no Secret %s", e.Name, r.Name)
				} else if _, ok := s.StringData[r.Key]; !ok {
					if _, ok := s.Data[r.Key]; !ok {
						bad("env %s: Secret %s has no key %s", e.Name, r.Name, r.Key)
					}
				}
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				if cm := b.configs[r.Name]; cm == nil {
					bad("env %s: no ConfigMap %s", e.Name, r.Name)
				} else if _, ok := cm.Data[r.Key]; !ok {
					bad("env %s: ConfigMap %s has no key %s", e.Name, r.Name, r.Key)
				}
			}
		}
		for _, ef := range c.EnvFrom {
			switch {
			case ef.SecretRef != nil:
				s := b.secrets[ef.SecretRef.Name]
				if s == nil {
					bad("envFrom: no Secret %s", ef.SecretRef.Name)
					continue
				}
				for k := range s.StringData {
					names[k] = true
				}
				for k := range s.Data {
					names[k] = true
				}
			case ef.ConfigMapRef != nil:
				cm := b.configs[ef.ConfigMapRef.Name]
				if cm == nil {
					bad("envFrom: no ConfigMap %s", ef.ConfigMapRef.Name)
					continue
				}
				for k := range cm.Data {
					names[k] = true
				}
			}
		}
		for n := range names {
			if err := checkEnvName(t, command, n); err != nil {
				bad("container %s: %v", c.Name, err)
			}
			if command == "agent" && (n == "ITTYBIT_API_KEY" || n == "ITTYBIT_SEAL_KEY") {
				bad("container %s: an agent gets %s: only the node token and S3 credentials belong on encode nodes", c.Name, n)
			}
		}
		// Kubernetes leaves $(NAME) as written when the container has no
		// such variable: a typo would reach ittybit as text.
		for _, a := range c.Args {
			for _, m := range varRef.FindAllStringSubmatch(a, -1) {
				if !names[m[1]] {
					bad("container %s: %s refers to $(%s), which the container does not define", c.Name, a, m[1])
				}
			}
		}
		if err := checkArgs(t, sampleArgs(c.Args)); err != nil {
			bad("container %s: %v", c.Name, err)
		}
	}
	return errors.Join(errs...)
}

// sampleArgs replaces $(NAME) references by sample values, for the flags
// to parse: an IP address for *_IP, a name otherwise.
func sampleArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = varRef.ReplaceAllStringFunc(a, func(ref string) string {
			if strings.HasSuffix(ref, "_IP)") {
				return "10.0.0.1"
			}
			return "sample"
		})
	}
	return out
}

// checkPodMonitors checks each PodMonitor against the pods it should
// scrape and the job names of the alert rules.
func checkPodMonitors(b *bundle, pms []*podMonitor, alerts string) error {
	var errs []error
	pods := map[string]*corev1.PodTemplateSpec{
		"server": &b.server.Spec.Template,
		"agent":  &b.agent.Spec.Template,
	}
	covered := map[string]bool{}
	for _, pm := range pms {
		var tpl *corev1.PodTemplateSpec
		for kind, p := range pods {
			if selects(&pm.Spec.Selector, p.Labels) {
				if tpl != nil {
					errs = append(errs, fmt.Errorf("PodMonitor %s selects both servers and agents", pm.Name))
				}
				tpl = p
				covered[kind] = true
			}
		}
		if tpl == nil {
			errs = append(errs, fmt.Errorf("PodMonitor %s selects no ittybit pod", pm.Name))
			continue
		}
		job := tpl.Labels[pm.Spec.JobLabel]
		if pm.Spec.JobLabel == "" || !strings.Contains(alerts, `job="`+job+`"`) {
			errs = append(errs, fmt.Errorf("PodMonitor %s: job name %q (jobLabel %q) is not one configs/alerts.yml uses", pm.Name, job, pm.Spec.JobLabel))
		}
		if len(pm.Spec.PodMetricsEndpoints) == 0 {
			errs = append(errs, fmt.Errorf("PodMonitor %s: no endpoint", pm.Name))
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if containerPort(&tpl.Spec.Containers[0], intstr.FromString(ep.Port)) == 0 {
				errs = append(errs, fmt.Errorf("PodMonitor %s: the pods have no port %q", pm.Name, ep.Port))
			}
			if ep.Path != "/metrics" {
				errs = append(errs, fmt.Errorf("PodMonitor %s: path %q, want /metrics", pm.Name, ep.Path))
			}
		}
	}
	for kind := range pods {
		if !covered[kind] {
			errs = append(errs, fmt.Errorf("no PodMonitor selects the %s pods", kind))
		}
	}
	return errors.Join(errs...)
}
