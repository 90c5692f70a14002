package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/schema"
)

// exampleID matches the ids of hookline's objects in a schema example: each
// is replaced with a fresh one of its prefix.
var exampleID = regexp.MustCompile(`^(acct|chk|pay|pat|evt|we|dlv)_[0-9A-HJKMNP-TV-Z]{26}$`)

// exampleTimes are the fields of an example's objects that hold times: they
// move to now, keeping their distance from the example event's created_at.
var exampleTimes = map[string]bool{"created_at": true, "expiry_at": true}

// schemaExampleEvent is an example event of a JSON Schema: its time and its
// data.
type schemaExampleEvent struct {
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// SchemaExample is the first example in t's JSON Schema
// (schema/events/<type>.json, "examples"): a whole event envelope, as the
// catalog shows it and test events are made from.
func SchemaExample(t EventType) (json.RawMessage, error) {
	raw, ok := schema.Event(string(t))
	if !ok {
		return nil, fmt.Errorf("example: event type %q has no schema", t)
	}
	var doc struct {
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("example of %s: %w", t, err)
	}
	if len(doc.Examples) == 0 {
		return nil, fmt.Errorf("example: the schema of %s has no example", t)
	}
	return doc.Examples[0], nil
}

// schemaExample is SchemaExample's time and data.
func schemaExample(t EventType) (schemaExampleEvent, error) {
	raw, err := SchemaExample(t)
	if err != nil {
		return schemaExampleEvent{}, err
	}
	var ex schemaExampleEvent
	if err := json.Unmarshal(raw, &ex); err != nil {
		return schemaExampleEvent{}, fmt.Errorf("example of %s: %w", t, err)
	}
	return ex, nil
}

// Example returns the data of a test event of type t, made from the example
// in t's JSON Schema (schema/events/<type>.json, "examples"): every id is a
// fresh one of its prefix (the same id twice stays the same id twice), every
// time moves by the distance from the example event's created_at to now, and
// livemode is the scope's. The fields keep the example's order.
func Example(t EventType, livemode bool, now time.Time) (json.RawMessage, error) {
	ex, err := schemaExample(t)
	if err != nil {
		return nil, err
	}
	shift := now.Unix() - ex.CreatedAt
	ids := map[string]string{}
	fix := func(key string, tok json.Token) (json.Token, error) {
		switch v := tok.(type) {
		case string:
			if m := exampleID.FindStringSubmatch(v); m != nil {
				if ids[v] == "" {
					ids[v] = NewID(m[1])
				}
				return ids[v], nil
			}
		case json.Number:
			if exampleTimes[key] {
				n, err := v.Int64()
				if err != nil {
					return nil, fmt.Errorf("%s is not Unix seconds: %w", key, err)
				}
				return json.Number(fmt.Sprint(n + shift)), nil
			}
		case bool:
			if key == "livemode" {
				return livemode, nil
			}
		}
		return tok, nil
	}
	dec := json.NewDecoder(bytes.NewReader(ex.Data))
	dec.UseNumber()
	var out bytes.Buffer
	if err := copyJSON(dec, &out, "", fix); err != nil {
		return nil, fmt.Errorf("example of %s: %w", t, err)
	}
	return out.Bytes(), nil
}

// copyJSON writes the next JSON value of dec to out, compact, objects' keys
// in their order, each scalar passed through fix with the key it is under
// (an array's elements are under the array's key).
func copyJSON(dec *json.Decoder, out *bytes.Buffer, key string, fix func(string, json.Token) (json.Token, error)) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		if tok, err = fix(key, tok); err != nil {
			return err
		}
		b, err := json.Marshal(tok)
		if err != nil {
			return err
		}
		out.Write(b)
		return nil
	}
	if delim != '{' && delim != '[' {
		return fmt.Errorf("unexpected %v", delim)
	}
	out.WriteString(delim.String())
	for i := 0; dec.More(); i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		elemKey := key
		if delim == '{' {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			elemKey, _ = k.(string)
			b, _ := json.Marshal(elemKey) // a string always marshals
			out.Write(b)
			out.WriteByte(':')
		}
		if err := copyJSON(dec, out, elemKey, fix); err != nil {
			return err
		}
	}
	end, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	out.WriteString(end.(json.Delim).String())
	return nil
}

// PublishExample records a test event of type t, made from its schema's
// example (see Example) and marked "example": true, whose one delivery goes
// to endpointID alone, whatever the endpoint subscribes to. The caller has
// checked that the endpoint is the scope's.
func (s *Service) PublishExample(ctx context.Context, tx pgx.Tx, scope Scope, t EventType, endpointID string) (*Event, error) {
	data, err := Example(t, scope.Livemode, time.Now())
	if err != nil {
		return nil, err
	}
	evts, err := s.publisher.PublishMany(ctx, tx, []Publication{{Scope: scope, Type: t, Object: data, Example: true, Endpoint: endpointID}})
	if err != nil {
		return nil, err
	}
	return evts[0], nil
}
