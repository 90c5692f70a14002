// Package schematest validates real API responses and event payloads against
// the schemas hookline publishes, so that tests catch any drift between what
// hookline sends and what schema/ promises.
package schematest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/hookline/hookline/schema"
)

// schemas are every schema schema/ publishes, compiled once: objects/<name>
// and events/<type> for each JSON file, and, for every response of every
// operation of openapi.yaml that has a JSON body, "METHOD /path STATUS" (the
// status as the spec writes it: "200", "default"), with its $refs into
// objects/ and events/ resolved. media lists, under the same keys, the media
// types each response declares.
type schemas struct {
	byName map[string]*jsonschema.Schema
	media  map[string][]string
	paths  map[string][]string // path template -> its methods, lower case
}

var compiled = sync.OnceValues(func() (*schemas, error) {
	c := jsonschema.NewCompiler()
	s := &schemas{byName: map[string]*jsonschema.Schema{}, media: map[string][]string{}, paths: map[string][]string{}}
	var files []string
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
		files = append(files, path)
		return c.AddResource(path, doc)
	})
	if err != nil {
		return nil, err
	}
	spec, err := openAPI()
	if err != nil {
		return nil, err
	}
	if err := c.AddResource("openapi.yaml", spec); err != nil {
		return nil, err
	}
	for _, path := range files {
		sch, err := c.Compile(path)
		if err != nil {
			return nil, err
		}
		s.byName[strings.TrimSuffix(path, ".json")] = sch
	}
	paths, _ := spec["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if responses == nil {
				continue
			}
			s.paths[path] = append(s.paths[path], method)
			for status, res := range responses {
				ptr := "/paths/" + escape(path) + "/" + method + "/responses/" + status
				if ref, ok := res.(map[string]any)["$ref"].(string); ok {
					ptr = strings.TrimPrefix(ref, "#")
					res = lookup(spec, ptr)
				}
				key := strings.ToUpper(method) + " " + path + " " + status
				content, _ := res.(map[string]any)["content"].(map[string]any)
				s.media[key] = []string{}
				for mt := range content {
					s.media[key] = append(s.media[key], mt)
				}
				if _, ok := content["application/json"]; !ok {
					continue
				}
				sch, err := c.Compile("openapi.yaml#" + ptr + "/content/application~1json/schema")
				if err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
				s.byName[key] = sch
			}
		}
	}
	return s, nil
})

// openAPI is schema/openapi.yaml as JSON values.
func openAPI() (map[string]any, error) {
	var v map[string]any
	if err := yaml.Unmarshal(schema.OpenAPI(), &v); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return doc.(map[string]any), nil
}

// escape is a JSON pointer's escaping of one reference token.
func escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

// lookup returns the value at a JSON pointer in doc, or nil.
func lookup(doc any, ptr string) any {
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, _ := doc.(map[string]any)
		doc = m[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]
	}
	return doc
}

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

// Response checks an answer of the API against openapi.yaml: the operation
// of method and urlPath (a request's path, /v1/checkouts/chk_…, matched to
// the spec's templates), the response the spec gives for its status (or its
// default), a media type that response declares (when it declares any),
// and, for JSON, a body valid
// against that response's schema: required fields present, no null where the
// spec allows none, no field the spec lacks.
func Response(method, urlPath string, status int, contentType string, body []byte) error {
	s, err := compiled()
	if err != nil {
		return fmt.Errorf("compile schemas: %w", err)
	}
	path, ok := s.template(strings.ToLower(method), urlPath)
	if !ok {
		return fmt.Errorf("openapi.yaml has no operation %s %s", method, urlPath)
	}
	key := method + " " + path + " " + strconv.Itoa(status)
	media, ok := s.media[key]
	if !ok {
		key = method + " " + path + " default"
		if media, ok = s.media[key]; !ok {
			return fmt.Errorf("openapi.yaml gives %s %s no %d response and no default", method, path, status)
		}
	}
	if len(media) == 0 {
		return nil // the spec describes no body (/metrics' Prometheus text)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || !slices.Contains(media, mt) {
		return fmt.Errorf("%s: Content-Type %q is not one of %v", key, contentType, media)
	}
	if mt != "application/json" {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %w", key, err)
	}
	if err := s.byName[key].Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// template is the path template of openapi.yaml that urlPath matches for
// method, a literal segment winning over a parameter (/v1/events/stream over
// /v1/events/{id}).
func (s *schemas) template(method, urlPath string) (string, bool) {
	segs := strings.Split(urlPath, "/")
	best, bestLiterals := "", -1
	for path, methods := range s.paths {
		if !slices.Contains(methods, method) {
			continue
		}
		tsegs := strings.Split(path, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		literals := 0
		for i, t := range tsegs {
			switch {
			case strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && segs[i] != "":
			case t == segs[i]:
				literals++
			default:
				literals = -1
			}
			if literals < 0 {
				break
			}
		}
		if literals > bestLiterals {
			best, bestLiterals = path, literals
		}
	}
	return best, bestLiterals >= 0
}

func validate(tb testing.TB, name string, body []byte) {
	tb.Helper()
	s, err := compiled()
	if err != nil {
		tb.Fatalf("compile schemas: %v", err)
	}
	sch, ok := s.byName[name]
	if !ok {
		tb.Fatalf("schema/%s.json does not exist", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("%s: not JSON: %v: %s", name, err, body)
	}
	if err := sch.Validate(doc); err != nil {
		tb.Fatalf("%s does not validate: %v\n%s", name, err, body)
	}
}
