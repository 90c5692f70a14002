// Package schema is hookline's published contract, embedded in the binary:
// openapi.yaml describes the REST API, events/<type>.json is the JSON Schema of
// each event type's envelope (served by GET /v1/event_types) and
// objects/<object>.json the schema of each API object, which openapi.yaml
// references.
//
// The event schemas are self-contained so that a merchant can validate a
// delivery with one file; a test keeps each one's data schema identical to
// its object's schema, and the tests of the other packages validate the real
// responses and events they produce against these files (schematest).
package schema
