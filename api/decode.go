package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"
)

// maxBodyBytes is the largest request body accepted (contract §2.2).
const maxBodyBytes = 1 << 20

// readBody reads a POST body, enforcing the size limit and, when there is a
// body, a JSON content type.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "body_too_large",
			Message: "The request body is larger than 1 MiB."}
	}
	if err != nil {
		return nil, invalid("", "The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/json" {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Type: "invalid_request_error", Code: "unsupported_media_type",
			Message: "Send the request body as JSON, with Content-Type: application/json."}
	}
	return body, nil
}

// decode parses body strictly into dst (unknown fields, trailing data and
// wrong types are errors naming the field) and applies dst's validate rules.
// An empty body decodes as {}.
func (s *Server) decode(body []byte, dst any) error {
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return decodeError(err)
		}
		if dec.More() {
			return invalid("", "The request body must be a single JSON object.")
		}
		if field, ok := nulField(reflect.ValueOf(dst), ""); ok {
			return invalid(field, field+" must not contain the NUL character (\\u0000)")
		}
	}
	err := s.validate.Struct(dst)
	var verrs validator.ValidationErrors
	if errors.As(err, &verrs) {
		return validationError(verrs[0])
	}
	return err
}

// nulField finds a string holding NUL (JSON's \u0000) in v, a decoded request,
// and names it as validation errors do. Postgres's text and jsonb refuse NUL,
// so such a string would otherwise fail at the insert, as a 500.
func nulField(v reflect.Value, path string) (string, bool) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.String:
		return path, strings.ContainsRune(v.String(), 0)
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nulField(v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if field, ok := nulField(v.Field(i), join(name)); ok {
				return field, true
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // json.RawMessage: parsed later, by its own rules
			return "", false
		}
		for i := range v.Len() {
			if field, ok := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); ok {
				return field, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			field := fmt.Sprintf("%s[%s]", path, it.Key().String())
			if strings.ContainsRune(it.Key().String(), 0) {
				return field, true
			}
			if field, ok := nulField(it.Value(), field); ok {
				return field, true
			}
		}
	}
	return "", false
}

func decodeError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "The request body is not valid JSON.")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalid("", "The request body must be a JSON object.")
		}
		return invalid(typeErr.Field, fmt.Sprintf("%s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(field, "Received unknown parameter: "+field)
	default:
		return invalid("", "The request body is not valid JSON.")
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice:
		return "array"
	default:
		return "value"
	}
}

// newValidator returns a validator that names fields by their JSON names, so
// that an error's param is what the client sent.
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	return v
}

// validationError turns the first failed rule into a message naming the field.
func validationError(fe validator.FieldError) *Error {
	// The namespace starts with the Go struct's name: drop it.
	_, param, _ := strings.Cut(fe.Namespace(), ".")
	var msg string
	switch fe.Tag() {
	case "required":
		msg = "is required"
	case "max":
		if fe.Kind() == reflect.Map || fe.Kind() == reflect.Slice {
			msg = "may have at most " + fe.Param() + " entries"
		} else {
			msg = "must be at most " + fe.Param() + " characters"
		}
	case "min":
		msg = "must be at least " + fe.Param() + " characters"
	case "email":
		msg = "must be an email address"
	case "iso3166_1_alpha2":
		msg = "must be an ISO 3166-1 alpha-2 country code, such as US"
	case "http_url":
		msg = "must be an http or https URL"
	case "numeric":
		msg = "must be digits only"
	case "oneof":
		msg = "must be one of: " + fe.Param()
	case "printascii":
		msg = "must be printable ASCII"
	default:
		msg = "is invalid (" + fe.Tag() + ")"
	}
	return invalid(param, param+" "+msg)
}

// parseAmount reads an amount of minor units sent as a JSON string of digits
// or a JSON integer, and returns it as a string of digits without leading
// zeros. Negative, fractional and exponent forms are refused.
func parseAmount(raw json.RawMessage, param string) (string, error) {
	s := string(bytes.TrimSpace(raw))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid(param, param+" must be a string of digits")
		}
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return "", invalid(param, param+" must be a non-negative whole number of the currency's minor units, such as \"6700\"")
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		s = "0"
	}
	if len(s) > 40 {
		return "", invalid(param, param+" must have at most 40 digits")
	}
	return s, nil
}
