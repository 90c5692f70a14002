package schema_test

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema"
	"github.com/hookline/hookline/schema/schematest"
)

// TestEventSchemasMatchObjects keeps the self-contained event schemas in step
// with the object schemas the API's responses are checked against: an event's
// data is the object, so its schema must be the object's.
func TestEventSchemasMatchObjects(t *testing.T) {
	t.Parallel()

	for _, e := range events.Catalog {
		t.Run(string(e.Type), func(t *testing.T) {
			t.Parallel()

			raw, ok := schema.Event(string(e.Type))
			if !ok {
				t.Fatalf("no schema/events/%s.json", e.Type)
			}
			var evt struct {
				Title      string
				Properties struct {
					Type map[string]any
					Data map[string]any
				}
			}
			if err := json.Unmarshal(raw, &evt); err != nil {
				t.Fatal(err)
			}
			if evt.Title != string(e.Type) || evt.Properties.Type["const"] != string(e.Type) {
				t.Fatalf("schema titled %q with type const %v", evt.Title, evt.Properties.Type["const"])
			}
			object, _, _ := strings.Cut(string(e.Type), ".")
			b, err := fs.ReadFile(schema.Files, "objects/"+object+".json")
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			delete(want, "$schema")
			if !reflect.DeepEqual(evt.Properties.Data, want) {
				t.Fatalf("data schema of %s differs from objects/%s.json", e.Type, object)
			}
		})
	}
}

func TestOpenAPIReferencesExist(t *testing.T) {
	t.Parallel()

	refs := regexp.MustCompile(`\$ref: "\./([^"]+)"`).FindAllStringSubmatch(string(schema.OpenAPI()), -1)
	if len(refs) == 0 {
		t.Fatal("openapi.yaml references no object schema")
	}
	for _, ref := range refs {
		if _, err := fs.Stat(schema.Files, ref[1]); err != nil {
			t.Errorf("openapi.yaml references %s, which is not embedded: %v", ref[1], err)
		}
	}
}

// TestEventExamplesValidate checks that every event type's schema has a
// realistic example (the template of its test events, see
// events.Example) and that the example is a valid instance of its own schema.
func TestEventExamplesValidate(t *testing.T) {
	t.Parallel()

	for _, e := range events.Catalog {
		t.Run(string(e.Type), func(t *testing.T) {
			t.Parallel()

			raw, _ := schema.Event(string(e.Type))
			var doc struct {
				Examples []json.RawMessage `json:"examples"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Examples) == 0 {
				t.Fatalf("schema/events/%s.json has no examples", e.Type)
			}
			for _, ex := range doc.Examples {
				schematest.Event(t, string(e.Type), ex)
				var env map[string]any
				if err := json.Unmarshal(ex, &env); err != nil {
					t.Fatal(err)
				}
				if _, ok := env["example"]; ok {
					t.Errorf("the example carries \"example\": it shows a real event, which never does")
				}
			}
		})
	}
}
