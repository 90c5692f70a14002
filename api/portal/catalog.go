package portal

import (
	"net/http"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema"
)

func (p *Portal) catalogPage(w http.ResponseWriter, r *http.Request, s *session) error {
	p.render(w, r, s, http.StatusOK, "catalog", &view{Title: "Event catalog", Nav: "events", Data: events.Catalog})
	return nil
}

type eventTypeView struct {
	Entry   events.CatalogEntry
	Example string
	Schema  string
}

// eventTypePage shows an event type of the catalog with its example (the
// one test events are made from) and its JSON Schema, as GET
// /v1/event_types serves them.
func (p *Portal) eventTypePage(w http.ResponseWriter, r *http.Request, s *session) error {
	t := events.EventType(r.PathValue("type"))
	entry, ok := events.Lookup(t)
	sch, hasSchema := schema.Event(string(t))
	if !ok || !hasSchema {
		return errNotFound
	}
	example, err := events.SchemaExample(t)
	if err != nil {
		return err
	}
	v := eventTypeView{Entry: entry, Example: indent(example), Schema: string(sch)}
	p.render(w, r, s, http.StatusOK, "event_type", &view{Title: string(t), Nav: "events", Data: v})
	return nil
}
