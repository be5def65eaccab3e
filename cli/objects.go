package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/model"
)

// singular names one object of kind in messages ("machine").
func singular(kind string) string {
	if kind == model.KindBootEnvs {
		return "bootenv"
	}
	return strings.TrimSuffix(kind, "s")
}

// keyHelp says what identifies an object of kind, for the Use lines.
func keyHelp(kind string) string {
	if kind == model.KindMachines {
		return "UUID|Name:NAME"
	}
	return "KEY"
}

// keyDoc explains how commands name one object of kind.
func keyDoc(kind string) string {
	keyField := nameField(kind)
	if kind == model.KindMachines {
		keyField = "UUID"
	}
	doc := fmt.Sprintf("An object is named by its %s, or by Field:value for a field that identifies it", keyField)
	if kind == model.KindMachines {
		return doc + ",\nfor example Name:n1, Address:10.0.0.5 or HardwareAddrs:52:54:00:12:34:56."
	}
	return doc + "."
}

// nameField is the field `create NAME` fills: the key field, except for
// machines, whose key (a UUID) the server generates.
func nameField(kind string) string {
	switch kind {
	case model.KindTemplates:
		return "ID"
	case model.KindReservations, model.KindLeases:
		return "Addr"
	}
	return "Name"
}

// bareName matches a word that can only be a name, never a JSON or YAML
// object, for `create NAME`.
var bareName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// notFoundError is a lookup that matched nothing; `exists` turns it into a
// quiet exit 1.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// fieldNames maps the lower-cased JSON field names of kind's model type to
// their spelling.
func fieldNames(kind string) map[string]string {
	names := map[string]string{}
	obj := model.New(kind)
	if obj == nil {
		return names
	}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			names[strings.ToLower(name)] = name
		}
	}
	walk(reflect.TypeOf(obj).Elem())
	return names
}

// splitFieldKey splits "Name:foo" into ("Name", "foo") when the part
// before the first colon is a field of kind (in any case). Anything else,
// a bare MAC address included, is a plain key.
func splitFieldKey(kind, key string) (field, value string, ok bool) {
	f, value, ok := strings.Cut(key, ":")
	if !ok {
		return "", "", false
	}
	field, ok = fieldNames(kind)[strings.ToLower(f)]
	if !ok {
		return "", "", false
	}
	return field, value, true
}

// resolveKey turns a command-line key into the object's key. A key of the
// form Field:value (Name:n1, Address:10.0.0.5) is looked up with a list
// filter and must match exactly one object.
// clientAndKey connects to the API and resolves a KEY argument (a key or
// Field:value) of kind.
func (a *app) clientAndKey(cmd *cobra.Command, kind, arg string) (*client.Client, string, error) {
	c, _, err := a.client(cmd)
	if err != nil {
		return nil, "", err
	}
	key, err := resolveKey(cmd, c, kind, arg)
	if err != nil {
		return nil, "", err
	}
	return c, key, nil
}

func resolveKey(cmd *cobra.Command, c *client.Client, kind, key string) (string, error) {
	field, value, ok := splitFieldKey(kind, key)
	if !ok {
		return key, nil
	}
	objs, _, err := c.ListObjects(cmd.Context(), kind, url.Values{field: {value}, "limit": {"2"}})
	if err != nil {
		return "", fmt.Errorf("look up %s %s: %w", singular(kind), key, err)
	}
	switch len(objs) {
	case 0:
		return "", &notFoundError{msg: fmt.Sprintf("no %s has %s %q", singular(kind), field, value)}
	case 1:
		return objs[0].Key(), nil
	}
	return "", fmt.Errorf("%s %q matches more than one %s: use the key", field, value, singular(kind))
}

// parseFilters turns Field=value arguments into list query values.
func parseFilters(args []string) (url.Values, error) {
	q := url.Values{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usageErrorf("filter %q is not Field=value", a)
		}
		q.Add(k, v)
	}
	return q, nil
}

// completeKeys completes the first argument with the keys of kind's
// objects, asking the server; without a server it offers nothing.
func (a *app) completeKeys(kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, _, err := a.client(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		objs, _, err := c.ListObjects(cmd.Context(), kind, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var keys []string
		for _, obj := range objs {
			if strings.HasPrefix(obj.Key(), toComplete) {
				keys = append(keys, obj.Key())
			}
		}
		return keys, cobra.ShellCompDirectiveNoFileComp
	}
}

func (a *app) listCmd(kind string) *cobra.Command {
	var (
		sortBy        string
		reverse       bool
		offset, limit int
	)
	cmd := &cobra.Command{
		Use:     "list [Field=value ...]",
		Short:   "List " + kind + ", filtered by field (Name=n1) or param (param.NAME=value)",
		Example: fmt.Sprintf("  ironcast %s list\n  ironcast %s list Name=n1 -o json\n  ironcast %s list --sort Name --limit 10", kind, kind, kind),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseFilters(args)
			if err != nil {
				return err
			}
			if sortBy != "" {
				q.Set("sort", sortBy)
			}
			if reverse {
				q.Set("reverse", "true")
			}
			if offset < 0 || limit < 0 {
				return usageErrorf("--offset and --limit must not be negative")
			}
			if offset > 0 {
				q.Set("offset", strconv.Itoa(offset))
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			items, total, err := c.List(cmd.Context(), kind, q)
			if err != nil {
				return fmt.Errorf("list %s: %w", kind, err)
			}
			p := a.printer(formatTable)
			if err := p.list(kind, items); err != nil {
				return err
			}
			if p.format == formatTable && total > len(items) {
				fmt.Fprintf(a.errOut, "(%d of %d %s shown)\n", len(items), total, kind)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sortBy, "sort", "", "sort by this field")
	f.BoolVar(&reverse, "reverse", false, "reverse the order")
	f.IntVar(&offset, "offset", 0, "skip this many objects")
	f.IntVar(&limit, "limit", 0, "show at most this many objects (0 = all)")
	return cmd
}

func (a *app) showCmd(kind string) *cobra.Command {
	var decode bool
	cmd := &cobra.Command{
		Use:   "show " + keyHelp(kind),
		Short: "Show one " + singular(kind),
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := a.clientAndKey(cmd, kind, args[0])
			if err != nil {
				return err
			}
			raw, _, err := c.Get(cmd.Context(), kind, key, decode)
			if err != nil {
				return fmt.Errorf("show %s %s: %w", singular(kind), key, err)
			}
			return a.printer(formatJSON).value(kind, raw)
		},
	}
	cmd.Flags().BoolVar(&decode, "decode", false, "show secure param values in clear (admin and operator)")
	return cmd
}

// inputFlag adds -f FILE to cmd.
func inputFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "file", "f", "", "read the document from `FILE` (JSON or YAML)")
}

func (a *app) createCmd(kind string) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create [JSON|YAML|@FILE|-|NAME]",
		Short: "Create a " + singular(kind) + " from JSON or YAML, or with just its " + nameField(kind),
		Example: fmt.Sprintf("  ironcast %s create '{\"%s\":\"x1\"}'\n  ironcast %s create @%s.yaml\n  ironcast %s create - < %s.json\n  ironcast %s create x1",
			kind, nameField(kind), kind, singular(kind), kind, singular(kind), kind),
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var obj json.RawMessage
			var err error
			if len(args) == 1 && file == "" && bareName.MatchString(args[0]) {
				obj, err = json.Marshal(map[string]string{nameField(kind): args[0]})
			} else {
				obj, err = a.document(args, 0, file, parseObject)
			}
			if err != nil {
				return err
			}
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			raw, err := c.Create(cmd.Context(), kind, obj)
			if err != nil {
				return fmt.Errorf("create %s: %w", singular(kind), err)
			}
			return a.printer(formatJSON).value(kind, raw)
		},
	}
	inputFlag(cmd, &file)
	return cmd
}

// document reads and parses the optional document argument args[i] (or -f).
func (a *app) document(args []string, i int, file string, parse func([]byte) (json.RawMessage, error)) (json.RawMessage, error) {
	arg := ""
	if len(args) > i {
		arg = args[i]
	}
	b, err := readInput(arg, file, a.in)
	if err != nil {
		return nil, err
	}
	doc, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	return doc, nil
}

func (a *app) updateCmd(kind string) *cobra.Command {
	var file, ifMatch string
	cmd := &cobra.Command{
		Use:     "update " + keyHelp(kind) + " [JSON|YAML|@FILE|-]",
		Short:   "Change fields of a " + singular(kind) + " (RFC 7396 merge patch: given fields replace, null deletes)",
		Example: fmt.Sprintf("  ironcast %s update KEY '{\"Description\":\"rack 4\"}'", kind),
		Args:    rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := a.document(args, 1, file, parseObject)
			if err != nil {
				return err
			}
			return a.patch(cmd, kind, args[0], doc, client.MergePatch, ifMatch)
		},
	}
	inputFlag(cmd, &file)
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "only update if the object's revision (ETag) is still this")
	return cmd
}

func (a *app) patchCmd(kind string) *cobra.Command {
	var file, ifMatch string
	cmd := &cobra.Command{
		Use:     "patch " + keyHelp(kind) + " [JSONPATCH|@FILE|-]",
		Short:   "Apply an RFC 6902 JSON Patch to a " + singular(kind),
		Example: fmt.Sprintf("  ironcast %s patch KEY '[{\"op\":\"replace\",\"path\":\"/Description\",\"value\":\"rack 4\"}]'", kind),
		Args:    rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := a.document(args, 1, file, parsePatch)
			if err != nil {
				return err
			}
			return a.patch(cmd, kind, args[0], doc, client.JSONPatch, ifMatch)
		},
	}
	inputFlag(cmd, &file)
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "only patch if the object's revision (ETag) is still this")
	return cmd
}

func (a *app) patch(cmd *cobra.Command, kind, key string, doc []byte, ctype, ifMatch string) error {
	c, _, err := a.client(cmd)
	if err != nil {
		return err
	}
	if key, err = resolveKey(cmd, c, kind, key); err != nil {
		return err
	}
	raw, err := c.Patch(cmd.Context(), kind, key, doc, ctype, ifMatch)
	if err != nil {
		return fmt.Errorf("update %s %s: %w", singular(kind), key, err)
	}
	return a.printer(formatJSON).value(kind, raw)
}

func (a *app) destroyCmd(kind string) *cobra.Command {
	var ifMatch string
	cmd := &cobra.Command{
		Use:   "destroy " + keyHelp(kind),
		Short: "Delete a " + singular(kind),
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := a.clientAndKey(cmd, kind, args[0])
			if err != nil {
				return err
			}
			if _, err := c.Delete(cmd.Context(), kind, key, ifMatch); err != nil {
				return fmt.Errorf("destroy %s %s: %w", singular(kind), key, err)
			}
			_, err = fmt.Fprintf(a.out, "Deleted %s %s\n", singular(kind), key)
			return err
		},
	}
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "only delete if the object's revision (ETag) is still this")
	return cmd
}

func (a *app) existsCmd(kind string) *cobra.Command {
	return &cobra.Command{
		Use:   "exists " + keyHelp(kind),
		Short: "Exit 0 if the " + singular(kind) + " exists and 1 if it does not, silently",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			key, err := resolveKey(cmd, c, kind, args[0])
			var nf *notFoundError
			if errors.As(err, &nf) {
				return errSilent
			}
			if err != nil {
				return err
			}
			ok, err := c.Exists(cmd.Context(), kind, key)
			if err != nil {
				return fmt.Errorf("check %s %s: %w", singular(kind), key, err)
			}
			if !ok {
				return errSilent
			}
			return nil
		},
	}
}
