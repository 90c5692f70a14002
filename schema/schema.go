package schema

import (
	"embed"
	"encoding/json"
)

// Files is the whole published contract: openapi.yaml, events/<type>.json and
// objects/<object>.json.
//
//go:embed openapi.yaml events/*.json objects/*.json
var Files embed.FS

// Event returns the JSON Schema of an event type's envelope, or false when the
// type has none.
func Event(eventType string) (json.RawMessage, bool) {
	b, err := Files.ReadFile("events/" + eventType + ".json")
	if err != nil {
		return nil, false
	}
	return b, true
}

// OpenAPI returns schema/openapi.yaml, the REST API's description.
func OpenAPI() []byte {
	b, err := Files.ReadFile("openapi.yaml")
	if err != nil {
		panic("schema: openapi.yaml is not embedded: " + err.Error())
	}
	return b
}
