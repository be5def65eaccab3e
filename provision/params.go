package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
)

// schemaCache compiles each param's JSON Schema once per revision.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]cachedSchema
}

type cachedSchema struct {
	raw    string
	schema *jsonschema.Schema
}

func newSchemaCache() *schemaCache { return &schemaCache{m: map[string]cachedSchema{}} }

func (c *schemaCache) compile(p *model.Param) (*jsonschema.Schema, error) {
	if len(p.Schema) == 0 {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs, ok := c.m[p.Name]; ok && cs.raw == string(p.Schema) {
		return cs.schema, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(p.Schema))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	comp := jsonschema.NewCompiler()
	url := "mem://params/" + p.Name + ".json"
	if err := comp.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := comp.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %w", err)
	}
	c.m[p.Name] = cachedSchema{raw: string(p.Schema), schema: sch}
	return sch, nil
}

// validate checks v against the param's schema. v is any JSON value as
// decoded by encoding/json.
func (c *schemaCache) validate(p *model.Param, v any) error {
	sch, err := c.compile(p)
	if err != nil || sch == nil {
		return err
	}
	// jsonschema wants numbers as json.Number or float64; round-trip
	// through its own decoder so both forms validate the same way.
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return errors.New(oneLine(ve))
		}
		return err
	}
	return nil
}

var english = message.NewPrinter(language.English)

// oneLine flattens a jsonschema validation error to its innermost causes.
func oneLine(ve *jsonschema.ValidationError) string {
	var msgs []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			msg := e.ErrorKind.LocalizedString(english)
			if loc != "/" {
				msg = "at " + loc + ": " + msg
			}
			msgs = append(msgs, msg)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return "does not match its schema: " + strings.Join(msgs, "; ")
}

// paramDefs loads every param definition by name.
func (s *Service) paramDefs(ctx context.Context) (map[string]*model.Param, error) {
	defs, err := store.List[model.Param](ctx, s.st)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*model.Param, len(defs))
	for _, d := range defs {
		out[d.Name] = d
	}
	return out, nil
}

// checkParams validates values against their definitions' schemas and
// seals secure ones. Values already sealed are kept as they are. field is
// the path prefix for errors.
func (s *Service) checkParams(ctx context.Context, field string, params map[string]any) (map[string]any, error) {
	if len(params) == 0 {
		return params, nil
	}
	defs, err := s.paramDefs(ctx)
	if err != nil {
		return params, err
	}
	var errs []error
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := params[k]
		d := defs[k]
		if d == nil {
			continue
		}
		if secrets.IsSealed(v) {
			if !d.Secure {
				errs = append(errs, model.Invalid(field+"."+k, "is sealed but the param is not secure"))
			}
			continue
		}
		if err := s.schemas.validate(d, v); err != nil {
			errs = append(errs, model.Invalid(field+"."+k, "%v", err))
			continue
		}
		if d.Secure {
			sealed, err := s.sealer.Seal(v)
			if err != nil {
				return params, err
			}
			params[k] = sealed
		}
	}
	return params, errors.Join(errs...)
}

// Layers loads everything a machine's params resolve through.
func (s *Service) Layers(ctx context.Context, m *model.Machine) (model.ParamLayers, error) {
	l := model.ParamLayers{Machine: m}
	var err error
	if l.Defs, err = s.paramDefs(ctx); err != nil {
		return l, err
	}
	for _, name := range m.Profiles {
		p, err := store.Get[model.Profile](ctx, s.st, name)
		if errors.Is(err, model.ErrNotFound) {
			s.log.Warn("machine names a missing profile", "machine", m.UUID, "profile", name)
			continue
		}
		if err != nil {
			return l, err
		}
		l.Profiles = append(l.Profiles, p)
	}
	if m.BootEnv != "" {
		be, err := s.Get(ctx, model.KindBootEnvs, m.BootEnv)
		if err == nil {
			l.BootEnv = be.(*model.BootEnv)
		} else if !errors.Is(err, model.ErrNotFound) {
			return l, err
		}
	}
	g, err := store.Get[model.Profile](ctx, s.st, model.GlobalProfile)
	if err == nil {
		l.Global = g
	} else if !errors.Is(err, model.ErrNotFound) {
		return l, err
	}
	return l, nil
}

// AggregateParams resolves every param of a machine, sorted by name, with
// where each value came from. Secure values stay sealed.
func (s *Service) AggregateParams(ctx context.Context, uuid string) ([]model.ResolvedParam, error) {
	m, err := store.Get[model.Machine](ctx, s.st, uuid)
	if err != nil {
		return nil, err
	}
	l, err := s.Layers(ctx, m)
	if err != nil {
		return nil, err
	}
	all := l.All()
	out := make([]model.ResolvedParam, 0, len(all))
	for _, r := range all {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
