// Package client is a typed Go client of hookline's REST API, generated from
// schema/openapi.yaml by oapi-codegen (`make generate`; CI fails when
// client.gen.go is not what the spec generates).
//
// It exists so that the spec and the server cannot drift apart: the API's
// tests call every operation through it against a served hookline and decode
// each answer strictly into its generated type, and `hookline listen` makes
// its API calls with it. Merchants' integrations may use it the same way.
//
// oapi-codegen was chosen over ogen because it reads the spec as hookline
// publishes it (OpenAPI 3.1, with its schemas in schema/objects and
// schema/events referenced as files, which ogen refuses without a resolver
// of its own), and generates code on net/http and encoding/json only, with
// a small runtime package for parameters.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../../schema/openapi.yaml
