package bootenvs

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/ironcast/ironcast/model"
)

//go:embed content/*.yaml templates/*.tmpl
var content embed.FS

// Catalog is the built-in content. It is immutable and safe for concurrent use.
type Catalog struct {
	bootEnvs  []*model.BootEnv
	templates []*model.Template
}

// BootEnvs returns the built-in bootenvs sorted by name. Callers must not
// modify them.
func (c *Catalog) BootEnvs() []*model.BootEnv { return c.bootEnvs }

// Templates returns the built-in templates sorted by ID. Callers must not
// modify them.
func (c *Catalog) Templates() []*model.Template { return c.templates }

var (
	once    sync.Once
	catalog *Catalog
	loadErr error
)

// Load parses the embedded content once and returns it.
func Load() (*Catalog, error) {
	once.Do(func() { catalog, loadErr = load(content) })
	return catalog, loadErr
}

func load(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{}
	var errs []error
	tmpls, err := fs.Glob(fsys, "templates/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	ids := map[string]bool{}
	for _, p := range tmpls {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		id := strings.TrimSuffix(path.Base(p), ".tmpl")
		t := &model.Template{ID: id, Contents: string(b), ReadOnly: true}
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
		ids[id] = true
		c.templates = append(c.templates, t)
	}
	envs, err := fs.Glob(fsys, "content/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list bootenvs: %w", err)
	}
	for _, p := range envs {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		var be model.BootEnv
		if err := yaml.UnmarshalStrict(b, &be); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if want := strings.TrimSuffix(path.Base(p), ".yaml"); be.Name != want {
			errs = append(errs, fmt.Errorf("%s: Name %q does not match the file name", p, be.Name))
		}
		be.ReadOnly = true
		if err := be.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
		for _, t := range be.Templates {
			if t.ID != "" && !ids[t.ID] {
				errs = append(errs, fmt.Errorf("%s: template %s refers to missing template %q", p, t.Name, t.ID))
			}
		}
		c.bootEnvs = append(c.bootEnvs, &be)
	}
	sort.Slice(c.bootEnvs, func(i, j int) bool { return c.bootEnvs[i].Name < c.bootEnvs[j].Name })
	sort.Slice(c.templates, func(i, j int) bool { return c.templates[i].ID < c.templates[j].ID })
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("built-in content: %w", err)
	}
	return c, nil
}
