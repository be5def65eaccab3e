package templates

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"

	"github.com/ironcast/ironcast/model"
)

// MaxOutput is the most bytes one render may produce. A template that
// writes more fails with ErrTooLarge instead of exhausting memory.
const MaxOutput = 16 << 20

// ErrTooLarge is returned (wrapped) when a render exceeds MaxOutput, or a
// sprig function is asked for a result larger than the engine allows.
var ErrTooLarge = errors.New("output too large")

// maxInlineCache bounds how many distinct inline texts (templated paths,
// kernel command lines) one template set keeps parsed.
const maxInlineCache = 4096

// Engine holds parsed templates by ID and renders them. The zero value is
// not usable; call NewEngine. An Engine is safe for concurrent use: Set and
// Delete swap in a new immutable template set, and renders in flight keep
// using the set they started with.
type Engine struct {
	funcs template.FuncMap

	mu      sync.Mutex // serialises Set and Delete
	entries map[string]*entry
	owners  map[string]string // template name → ID of the template defining it
	cur     atomic.Pointer[set]
}

// entry is one template given to Set: its text and the trees it defines
// (the template itself under its ID plus any {{define}} blocks).
type entry struct {
	text  string
	trees map[string]*parse.Tree
}

// set is an immutable snapshot of every template, shared by renders.
type set struct {
	root    *template.Template
	inline  sync.Map // text → *template.Template (a clone of root with the text added)
	nInline atomic.Int64
}

// NewEngine returns an Engine with no templates.
func NewEngine() *Engine {
	e := &Engine{
		funcs:   FuncMap(),
		entries: map[string]*entry{},
		owners:  map[string]string{},
	}
	e.cur.Store(e.build())
	return e
}

// FuncMap returns the functions templates may call: sprig's text functions
// without env, expandenv and getHostByName (templates must not read the
// server's environment or make network calls), and with repeat, until,
// untilStep, seq and the rand* string functions bounded so a template cannot
// allocate without limit. The map is new on every call and owned by the
// caller.
func FuncMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	delete(fm, "env")
	delete(fm, "expandenv")
	delete(fm, "getHostByName")

	const maxItems = 1 << 20
	tooBig := func(fn string, n int) error {
		return fmt.Errorf("%s: %d items: %w (limit %d)", fn, n, ErrTooLarge, maxItems)
	}
	fm["repeat"] = func(count int, str string) (string, error) {
		if count < 0 {
			return "", fmt.Errorf("repeat: negative count %d", count)
		}
		if len(str) > 0 && count > MaxOutput/len(str) {
			return "", tooBig("repeat", count)
		}
		return strings.Repeat(str, count), nil
	}
	untilStep := fm["untilStep"].(func(int, int, int) []int)
	span := func(start, stop, step int) int {
		if step == 0 || (stop > start) != (step > 0) {
			return 0
		}
		d := int64(stop) - int64(start)
		s := int64(step)
		if d < 0 {
			d, s = -d, -s
		}
		n := d / s
		if n > maxItems {
			return maxItems + 1
		}
		return int(n)
	}
	fm["untilStep"] = func(start, stop, step int) ([]int, error) {
		if n := span(start, stop, step); n > maxItems {
			return nil, tooBig("untilStep", n)
		}
		return untilStep(start, stop, step), nil
	}
	until := fm["until"].(func(int) []int)
	fm["until"] = func(count int) ([]int, error) {
		if count > maxItems || count < -maxItems {
			return nil, tooBig("until", count)
		}
		return until(count), nil
	}
	seq := fm["seq"].(func(...int) string)
	fm["seq"] = func(params ...int) (string, error) {
		var start, end, step int
		switch len(params) {
		case 1:
			start, end, step = 1, params[0], 1
		case 2:
			start, end, step = params[0], params[1], 1
		case 3:
			start, end, step = params[0], params[2], params[1]
		}
		if step < 0 {
			step = -step
		}
		if step == 0 {
			step = 1
		}
		if d := int64(end) - int64(start); d > int64(maxItems)*int64(step) || -d > int64(maxItems)*int64(step) {
			return "", tooBig("seq", maxItems+1)
		}
		return seq(params...), nil
	}
	for _, name := range []string{"randAlphaNum", "randAlpha", "randAscii", "randNumeric"} {
		f := fm[name].(func(int) string)
		fm[name] = func(count int) (string, error) {
			if count > maxItems {
				return "", tooBig(name, count)
			}
			return f(count), nil
		}
	}
	rb := fm["randBytes"].(func(int) (string, error))
	fm["randBytes"] = func(count int) (string, error) {
		if count > maxItems {
			return "", tooBig("randBytes", count)
		}
		return rb(count)
	}
	return fm
}

// ParseError reports a template that does not parse, with the 1-based line
// and column of the problem. Column is 0 when it cannot be located.
type ParseError struct {
	// ID is the template's ID (or the name given to RenderString).
	ID string
	// Line and Column locate the problem in the template text.
	Line, Column int
	// Message is text/template's description of the problem.
	Message string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("template %s:%d:%d: %s", e.ID, e.Line, e.Column, e.Message)
}

// Unwrap presents a ParseError as a *model.ValidationError of the field
// "Contents", so the API answers 422 with the position in the message.
func (e *ParseError) Unwrap() error {
	return &model.ValidationError{Field: "Contents", Message: fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)}
}

// Check reports whether contents would be accepted by Set(id, contents)
// (it parses, and its {{define}} blocks clash with no other template)
// without storing it. The API calls it before saving a template.
func (e *Engine) Check(id, contents string) error {
	trees, err := e.prepare(id, contents)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conflicts(id, trees)
}

// Set parses contents and stores it under id, replacing any template with
// that ID. A template that does not parse is refused with a *ParseError and
// leaves the engine unchanged. {{define "name"}} blocks inside contents
// become templates of their own that other templates can include; defining
// a name that is another template's ID, or that another template defines,
// is refused with an error wrapping model.ErrConflict.
func (e *Engine) Set(id, contents string) error {
	trees, err := e.prepare(id, contents)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.conflicts(id, trees); err != nil {
		return err
	}
	if old := e.entries[id]; old != nil {
		for name := range old.trees {
			delete(e.owners, name)
		}
	}
	e.entries[id] = &entry{text: contents, trees: trees}
	for name := range trees {
		e.owners[name] = id
	}
	e.cur.Store(e.build())
	return nil
}

// prepare parses contents into the trees it defines.
func (e *Engine) prepare(id, contents string) (map[string]*parse.Tree, error) {
	if id == "" {
		return nil, model.Invalid("ID", "is required")
	}
	t, err := e.parse(id, contents)
	if err != nil {
		return nil, err
	}
	trees := map[string]*parse.Tree{}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			trees[tt.Name()] = tt.Tree
		}
	}
	if _, ok := trees[id]; !ok {
		// Text with only whitespace has no tree; keep an empty one so the
		// ID exists and renders to nothing.
		trees[id] = &parse.Tree{Name: id, ParseName: id, Root: &parse.ListNode{NodeType: parse.NodeList}}
	}
	return trees, nil
}

// conflicts checks that the names of trees belong to no other
// template. Called with mu held.
func (e *Engine) conflicts(id string, trees map[string]*parse.Tree) error {
	for name := range trees {
		if owner, ok := e.owners[name]; ok && owner != id {
			if name == owner {
				return fmt.Errorf("template %s defines %q: that is the ID of another template: %w", id, name, model.ErrConflict)
			}
			return fmt.Errorf("template %s defines %q: already defined by template %s: %w", id, name, owner, model.ErrConflict)
		}
	}
	return nil
}

// Delete removes the template with that ID and the blocks it defines. It
// does nothing when there is none. Templates that include it fail to render
// from then on.
func (e *Engine) Delete(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.entries[id]
	if old == nil {
		return
	}
	for name := range old.trees {
		delete(e.owners, name)
	}
	delete(e.entries, id)
	e.cur.Store(e.build())
}

// IDs returns the IDs of the stored templates, sorted.
func (e *Engine) IDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.entries))
	for id := range e.entries {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Has reports whether a template with that ID is stored.
func (e *Engine) Has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.entries[id] != nil
}

// build makes a new template set from the entries. Called with mu held.
func (e *Engine) build() *set {
	root := template.New("").Funcs(e.funcs).Option("missingkey=error")
	for _, en := range e.entries {
		for name, tree := range en.trees {
			// text/template's AddParseTree never fails (html/template's
			// can); the trees were parsed with the same functions.
			_, _ = root.AddParseTree(name, tree)
		}
	}
	return &set{root: root}
}

// Render renders the template with that ID for ctx and returns the whole
// output. It returns an error wrapping model.ErrNotFound when there is no
// such template, and otherwise the template's execution error (naming the
// template, line, column and cause). ctx may be nil for templates that use
// nothing from it. The returned slice is owned by the caller.
func (e *Engine) Render(id string, ctx *RenderContext) ([]byte, error) {
	s := e.cur.Load()
	t := s.root.Lookup(id)
	if t == nil {
		return nil, fmt.Errorf("template %s: %w", id, model.ErrNotFound)
	}
	return e.execute(t, id, ctx.bind(e))
}

// RenderString parses text as a template named name and renders it for ctx.
// It is for texts that are themselves templates (bootenv paths, kernel
// command lines) and may include stored templates. Parsed texts are cached,
// so rendering the same text again costs no parse. A text that does not
// parse returns a *ParseError.
func (e *Engine) RenderString(name, text string, ctx *RenderContext) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := e.inlineTemplate(e.cur.Load(), name, text)
	if err != nil {
		return "", err
	}
	out, err := e.execute(t, name, ctx.bind(e))
	return string(out), err
}

// inlineTemplate returns text parsed into a clone of s, from s's cache
// when it was parsed before.
func (e *Engine) inlineTemplate(s *set, name, text string) (*template.Template, error) {
	if v, ok := s.inline.Load(text); ok {
		return v.(*template.Template), nil
	}
	if _, err := e.parse(name, text); err != nil {
		return nil, err
	}
	c, err := s.root.Clone()
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	// A name no stored template can have, so the text never replaces one.
	t, err := c.New(inlineName).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	if s.nInline.Add(1) <= maxInlineCache {
		s.inline.Store(text, t)
	}
	return t, nil
}

const inlineName = "\x00inline"

// execute runs t over the bound context rc into a bounded buffer.
func (e *Engine) execute(t *template.Template, name string, rc *RenderContext) ([]byte, error) {
	w := &limitedBuffer{max: MaxOutput}
	if err := t.Execute(w, rc); err != nil {
		msg := strings.ReplaceAll(err.Error(), inlineName, name)
		return nil, &RenderError{Template: name, Err: err, msg: msg}
	}
	return w.buf.Bytes(), nil
}

// RenderError is a template that failed while rendering. Err is the cause
// from text/template, which wraps the error of a failing method (for
// example a *MissingParamError) so errors.As finds it.
type RenderError struct {
	// Template is the ID or name of the template that was rendered.
	Template string
	Err      error
	msg      string
}

func (e *RenderError) Error() string { return "render " + e.Template + ": " + e.msg }
func (e *RenderError) Unwrap() error { return e.Err }

// limitedBuffer is a bytes.Buffer that refuses to grow past max.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		return 0, fmt.Errorf("more than %d bytes: %w", b.max, ErrTooLarge)
	}
	return b.buf.Write(p)
}

// parse parses text standalone, with the engine's functions, and turns a
// parse failure into a *ParseError.
func (e *Engine) parse(id, text string) (*template.Template, error) {
	t, err := template.New(id).Funcs(e.funcs).Option("missingkey=error").Parse(text)
	if err == nil {
		return t, nil
	}
	line, msg := splitParseError(id, err)
	// The lexer reports an action left open where the text ends, and says
	// where it started; point there.
	if i := strings.Index(msg, "started at "+id+":"); i >= 0 {
		if n, err := strconv.Atoi(msg[i+len("started at "+id+":"):]); err == nil {
			line = n
		}
	}
	return nil, &ParseError{ID: id, Line: line, Column: e.locate(id, text, line, msg), Message: msg}
}

// splitParseError takes text/template's "template: ID:LINE: message" apart.
func splitParseError(id string, err error) (line int, msg string) {
	s := err.Error()
	prefix := "template: " + id + ":"
	if !strings.HasPrefix(s, prefix) {
		return 0, s
	}
	rest := s[len(prefix):]
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		return 0, s
	}
	n, perr := strconv.Atoi(rest[:i])
	if perr != nil {
		return 0, s
	}
	return n, strings.TrimSpace(rest[i+1:])
}

// locate finds the column of a parse error that text/template reports by
// line only. It parses ever longer prefixes of the text, each ending after
// an action on the error line; the first prefix that fails for a reason
// other than running out of text ends in the faulty action, whose "{{" is
// the column. Errors at the end of the text point after its last byte.
func (e *Engine) locate(id, text string, line int, msg string) int {
	if line <= 0 {
		return 0
	}
	start := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(text[start:], '\n')
		if i < 0 {
			return 0
		}
		start += i + 1
	}
	end := len(text)
	if i := strings.IndexByte(text[start:], '\n'); i >= 0 {
		end = start + i
	}
	col := func(off int) int { return len([]rune(text[start:off])) + 1 }
	if strings.Contains(msg, "unexpected EOF") {
		return col(end)
	}
	for off := start; off < end; {
		i := strings.Index(text[off:end], "}}")
		if i < 0 {
			break
		}
		p := off + i + 2
		_, err := template.New(id).Funcs(e.funcs).Parse(text[:p])
		if err != nil {
			l, m := splitParseError(id, err)
			if l == line && !strings.Contains(m, "unexpected EOF") && !strings.Contains(m, "unclosed") {
				if open := strings.LastIndex(text[:p], "{{"); open >= start {
					return col(open)
				}
				return 1
			}
		}
		off = p
	}
	// The action never closes on this line (or the lexer failed inside
	// it): point at the last "{{" opened on the line.
	if open := strings.LastIndex(text[start:end], "{{"); open >= 0 {
		return col(start + open)
	}
	return 1
}
