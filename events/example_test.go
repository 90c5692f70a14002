package events_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema"
	"github.com/hookline/hookline/schema/schematest"
)

// TestExample builds a test event's data from each type's schema example and
// checks it against the example: a valid envelope of its type once wrapped,
// the example's fields in their order, every id fresh (one fresh id for each
// id of the example, so that a payment attempt still names its checkout's
// id and payin), times moved by the same amount, and the scope's mode.
func TestExample(t *testing.T) {
	t.Parallel()

	now := time.Date(2027, 3, 1, 9, 30, 0, 0, time.UTC)
	ids := regexp.MustCompile(`"[a-z]+_[0-9A-HJKMNP-TV-Z]{26}"`)
	for _, e := range events.Catalog {
		for _, livemode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s livemode %v", e.Type, livemode), func(t *testing.T) {
				t.Parallel()

				data, err := events.Example(e.Type, livemode, now)
				if err != nil {
					t.Fatal(err)
				}
				envelope := fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"created_at":%d,"livemode":%v,"example":true,"data":%s}`,
					events.NewID(events.PrefixEvent), e.Type, now.Unix(), livemode, data)
				schematest.Event(t, string(e.Type), []byte(envelope))

				raw, _ := schema.Event(string(e.Type))
				var doc struct {
					Examples []struct {
						CreatedAt int64           `json:"created_at"`
						Data      json.RawMessage `json:"data"`
					} `json:"examples"`
				}
				if err := json.Unmarshal(raw, &doc); err != nil {
					t.Fatal(err)
				}
				example := doc.Examples[0]
				var want, got map[string]any
				if err := json.Unmarshal(example.Data, &want); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(data, &got); err != nil {
					t.Fatal(err)
				}
				if keys(example.Data) != keys(data) {
					t.Errorf("fields in another order:\n got %s\nwant %s", keys(data), keys(example.Data))
				}
				if got["livemode"] != livemode {
					t.Errorf("livemode %v, want the scope's %v", got["livemode"], livemode)
				}
				shift := float64(now.Unix() - example.CreatedAt)
				for _, k := range []string{"created_at", "expiry_at"} {
					if w, ok := want[k].(float64); ok && got[k] != w+shift {
						t.Errorf("%s %v, want the example's %v moved by %v", k, got[k], w, shift)
					}
				}
				// The same example id gets the same fresh id; different ones differ.
				fresh := map[string]string{}
				oldIDs, newIDs := ids.FindAllString(string(example.Data), -1), ids.FindAllString(string(data), -1)
				if len(oldIDs) == 0 || len(oldIDs) != len(newIDs) {
					t.Fatalf("ids %v became %v", oldIDs, newIDs)
				}
				seen := map[string]bool{}
				for i, old := range oldIDs {
					if prefix, _, _ := strings.Cut(old, "_"); !strings.HasPrefix(newIDs[i], prefix+"_") || newIDs[i] == old {
						t.Errorf("id %s became %s", old, newIDs[i])
					}
					if f, ok := fresh[old]; ok && f != newIDs[i] {
						t.Errorf("id %s became both %s and %s", old, f, newIDs[i])
					} else if !ok && seen[newIDs[i]] {
						t.Errorf("two ids became %s", newIDs[i])
					}
					fresh[old], seen[newIDs[i]] = newIDs[i], true
				}
				again, _ := events.Example(e.Type, livemode, now)
				if string(again) == string(data) {
					t.Error("two test events share their ids")
				}
			})
		}
	}
}

// keys lists the top-level keys of a JSON object in their order.
func keys(object json.RawMessage) string {
	dec := json.NewDecoder(strings.NewReader(string(object)))
	var out []string
	if _, err := dec.Token(); err != nil {
		return ""
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		out = append(out, fmt.Sprint(k))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return strings.Join(out, ",")
}
