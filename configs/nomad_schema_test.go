package configs

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// This file reads Nomad job files with hashicorp/hcl/v2 against a schema
// of the job specification written here (Nomad's own parser lives in its
// BUSL-licensed module): every block and attribute the jobs use, and the
// common ones beside them. A block or attribute outside it is an error,
// as a typo is to `nomad job validate`.

// schema is what a block may hold.
type schema struct {
	labels   []string
	attrs    []string
	blocks   map[string]*schema
	anyAttrs bool // env, meta: any attribute name, no blocks
}

func attrs(names string, blocks map[string]*schema) *schema {
	return &schema{attrs: strings.Fields(names), blocks: blocks}
}

func labelled(label string, s *schema) *schema {
	s.labels = []string{label}
	return s
}

// jobSchema is the Nomad job specification, as far as these jobs go.
// Task config blocks depend on the driver: driverConfig.
var jobSchema = func() *schema {
	kv := &schema{anyAttrs: true}
	constraint := attrs("attribute operator value", nil)
	affinity := attrs("attribute operator value weight", nil)
	update := attrs("max_parallel health_check min_healthy_time healthy_deadline progress_deadline auto_revert auto_promote canary stagger", nil)
	restart := attrs("attempts interval delay mode render_templates", nil)
	task := labelled("name", attrs("driver user kill_timeout kill_signal shutdown_delay leader", map[string]*schema{
		"config":     nil, // by driver
		"env":        kv,
		"meta":       kv,
		"constraint": constraint,
		"affinity":   affinity,
		"restart":    restart,
		"resources": attrs("cpu cores memory memory_max", map[string]*schema{
			"device": labelled("name", attrs("count", map[string]*schema{
				"constraint": constraint,
				"affinity":   affinity,
			})),
		}),
		"template": attrs("data source destination env change_mode change_signal perms uid gid splay left_delimiter right_delimiter error_on_missing_key", map[string]*schema{
			"wait": attrs("min max", nil),
		}),
		"volume_mount": attrs("volume destination read_only propagation_mode", nil),
	}))
	group := labelled("name", attrs("count shutdown_delay stop_after_client_disconnect", map[string]*schema{
		"constraint": constraint,
		"affinity":   affinity,
		"meta":       kv,
		"update":     update,
		"restart":    restart,
		"reschedule": attrs("attempts interval delay delay_function max_delay unlimited", nil),
		"network": attrs("mode hostname", map[string]*schema{
			"port": labelled("label", attrs("static to host_network", nil)),
		}),
		"volume":         labelled("name", attrs("type source read_only access_mode attachment_mode per_alloc", nil)),
		"ephemeral_disk": attrs("size sticky migrate", nil),
		"service": attrs("name port provider tags canary_tags address_mode task", map[string]*schema{
			"check": attrs("name type path port interval timeout method protocol initial_status address_mode", map[string]*schema{
				"check_restart": attrs("limit grace ignore_warnings", nil),
			}),
		}),
		"task": task,
	}))
	return labelled("name", attrs("type datacenters region namespace node_pool priority all_at_once", map[string]*schema{
		"constraint": constraint,
		"affinity":   affinity,
		"meta":       kv,
		"update":     update,
		"group":      group,
	}))
}()

// driverConfig is the config block of each task driver the jobs use.
var driverConfig = map[string]*schema{
	"docker": attrs("image args command entrypoint network_mode ports devices group_add volumes runtime privileged cap_add cap_drop security_opt readonly_rootfs labels", map[string]*schema{
		"healthchecks": attrs("disable", nil),
	}),
	"exec": attrs("command args pid_mode ipc_mode cap_add cap_drop", nil),
}

// block is a decoded block: attribute values as Go values (string, int64,
// float64, bool, []any, map[string]any) and its blocks in order.
type block struct {
	typ    string
	labels []string
	attrs  map[string]any
	blocks []*block
}

func (b *block) all(typ string) []*block {
	var out []*block
	if b == nil {
		return nil
	}
	for _, c := range b.blocks {
		if c.typ == typ {
			out = append(out, c)
		}
	}
	return out
}

// one returns the first block of a type, or an empty one.
func (b *block) one(typ string) *block {
	if all := b.all(typ); len(all) > 0 {
		return all[0]
	}
	return &block{typ: typ, attrs: map[string]any{}}
}

func (b *block) str(name string) string { s, _ := b.attrs[name].(string); return s }

func (b *block) num(name string) int64 { n, _ := b.attrs[name].(int64); return n }

func (b *block) strs(name string) []string {
	list, _ := b.attrs[name].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// parseJob parses one job file.
func parseJob(name string, src []byte) (*block, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, diags
	}
	root := &schema{blocks: map[string]*schema{"job": jobSchema}}
	d := &decoder{src: src}
	top, err := d.block(f.Body, root, "file", nil, "")
	if err != nil {
		return nil, err
	}
	jobs := top.all("job")
	if len(jobs) != 1 {
		return nil, fmt.Errorf("%s: want one job, found %d", name, len(jobs))
	}
	return jobs[0], nil
}

type decoder struct{ src []byte }

func (d *decoder) block(body hcl.Body, s *schema, typ string, labels []string, driver string) (*block, error) {
	out := &block{typ: typ, labels: labels, attrs: map[string]any{}}
	var hattrs hcl.Attributes
	var hblocks hcl.Blocks
	if s.anyAttrs {
		as, diags := body.JustAttributes()
		if diags.HasErrors() {
			return nil, diags
		}
		hattrs = as
	} else {
		bs := &hcl.BodySchema{}
		for _, a := range s.attrs {
			bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: a})
		}
		for name, c := range s.blocks {
			h := hcl.BlockHeaderSchema{Type: name}
			if c != nil {
				h.LabelNames = c.labels
			}
			bs.Blocks = append(bs.Blocks, h)
		}
		content, diags := body.Content(bs)
		if diags.HasErrors() {
			return nil, diags
		}
		hattrs, hblocks = content.Attributes, content.Blocks
	}
	for name, a := range hattrs {
		v, err := d.eval(a.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", a.NameRange, name, err)
		}
		out.attrs[name] = v
	}
	if typ == "task" {
		driver = out.str("driver")
	}
	for _, hb := range hblocks {
		c := s.blocks[hb.Type]
		if hb.Type == "config" {
			if c = driverConfig[driver]; c == nil {
				return nil, fmt.Errorf("%s: config of driver %q: this test knows %v", hb.DefRange, driver, []string{"docker", "exec"})
			}
		}
		child, err := d.block(hb.Body, c, hb.Type, hb.Labels, driver)
		if err != nil {
			return nil, err
		}
		out.blocks = append(out.blocks, child)
	}
	return out, nil
}

// runtimeVar is what Nomad interpolates when it places a task; the job
// keeps these as ${…} text.
var runtimeVar = regexp.MustCompile(`^(NOMAD_(ALLOC_INDEX|ALLOC_ID|ALLOC_NAME|ALLOC_DIR|TASK_DIR|SECRETS_DIR|JOB_NAME|GROUP_NAME|TASK_NAME|DC|REGION|(ADDR|IP|PORT|HOST_PORT|HOST_IP|HOST_ADDR)_[a-z][a-z0-9_]*)|node\.(unique\.name|unique\.id|datacenter|region|class|pool)|meta\.[a-z][a-z0-9_]*|attr\.[a-z][a-z0-9._]*|device\.(attr\.[a-z][a-z0-9_]*|vendor|type|model))$`)

// eval evaluates an expression with no variables but Nomad's runtime
// ones, which stay ${…} text in strings.
func (d *decoder) eval(e hcl.Expression) (any, error) {
	switch e := e.(type) {
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for _, part := range e.Parts {
			if lit, ok := part.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String {
				sb.WriteString(lit.Val.AsString())
				continue
			}
			s, err := d.interpolation(part)
			if err != nil {
				return nil, err
			}
			sb.WriteString(s)
		}
		return sb.String(), nil
	case *hclsyntax.TemplateWrapExpr:
		return d.interpolation(e.Wrapped)
	case *hclsyntax.TupleConsExpr:
		out := make([]any, 0, len(e.Exprs))
		for _, x := range e.Exprs {
			v, err := d.eval(x)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case *hclsyntax.ObjectConsExpr:
		out := map[string]any{}
		for _, item := range e.Items {
			key := hcl.ExprAsKeyword(item.KeyExpr)
			if key == "" {
				return nil, fmt.Errorf("%s: object keys must be names", item.KeyExpr.Range())
			}
			v, err := d.eval(item.ValueExpr)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	switch v.Type() {
	case cty.String:
		return v.AsString(), nil
	case cty.Bool:
		return v.True(), nil
	case cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			n, acc := bf.Int64()
			if acc == big.Exact {
				return n, nil
			}
		}
		f, _ := bf.Float64()
		return f, nil
	}
	return nil, fmt.Errorf("%s: a value of type %s", e.Range(), v.Type().FriendlyName())
}

func (d *decoder) interpolation(e hclsyntax.Expression) (string, error) {
	text := string(e.Range().SliceBytes(d.src))
	if !runtimeVar.MatchString(text) {
		return "", fmt.Errorf("%s: ${%s} is not a Nomad runtime variable", e.Range(), text)
	}
	return "${" + text + "}", nil
}
