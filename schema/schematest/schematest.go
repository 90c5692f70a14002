// Package schematest validates real API responses and event payloads against
// the schemas hookline publishes, so that tests catch any drift between what
// hookline sends and what schema/ promises.
package schematest

import (
	"bytes"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hookline/hookline/schema"
)

var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	err := fs.WalkDir(schema.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := fs.ReadFile(schema.Files, path)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		if err := c.AddResource(path, doc); err != nil {
			return err
		}
		s, err := c.Compile(path)
		if err != nil {
			return err
		}
		out[strings.TrimSuffix(path, ".json")] = s
		return nil
	})
	return out, err
})

// Object fails the test unless body is a valid instance of objects/<name>.json.
func Object(tb testing.TB, name string, body []byte) {
	tb.Helper()
	validate(tb, "objects/"+name, body)
}

// Event fails the test unless payload is a valid envelope of its own type,
// per events/<type>.json.
func Event(tb testing.TB, eventType string, payload []byte) {
	tb.Helper()
	validate(tb, "events/"+eventType, payload)
}

func validate(tb testing.TB, name string, body []byte) {
	tb.Helper()
	schemas, err := compiled()
	if err != nil {
		tb.Fatalf("compile schemas: %v", err)
	}
	s, ok := schemas[name]
	if !ok {
		tb.Fatalf("schema/%s.json does not exist", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("%s: not JSON: %v: %s", name, err, body)
	}
	if err := s.Validate(doc); err != nil {
		tb.Fatalf("%s does not validate: %v\n%s", name, err, body)
	}
}
