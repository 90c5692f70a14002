package api

import (
	"context"
	"encoding/json"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema"
)

func (s *Server) getEvent(ctx context.Context, c *call) (any, error) {
	evt, err := events.GetEvent(ctx, s.pool, c.scope, c.id())
	if err != nil {
		return withNotFound(evt, err)("event", c.id())
	}
	return evt.Payload, nil
}

func (s *Server) listEvents(ctx context.Context, c *call) (any, error) {
	page, err := pageParams(c.r, "type", "delivery_success")
	if err != nil {
		return nil, err
	}
	t := events.EventType(c.r.URL.Query().Get("type"))
	if _, ok := events.Lookup(t); t != "" && !ok {
		return nil, invalid("type", "type must be an event type of GET /v1/event_types")
	}
	var list *events.List[*events.Event]
	switch c.r.URL.Query().Get("delivery_success") {
	case "":
		list, err = events.ListEvents(ctx, s.pool, c.scope, t, page)
	case "false":
		list, err = delivery.ListUndelivered(ctx, s.pool, c.scope, t, page)
	default:
		// Events whose deliveries all succeeded are most of a history: a
		// page of them would test each event's deliveries, row by row.
		return nil, invalid("delivery_success", "only delivery_success=false is supported: the events with a delivery not succeeded")
	}
	if err != nil {
		return nil, err
	}
	payloads := &events.List[json.RawMessage]{HasMore: list.HasMore}
	for _, evt := range list.Data {
		payloads.Data = append(payloads.Data, evt.Payload)
	}
	return newList(c.r, payloads), nil
}

type eventTypeBody struct {
	Object         string          `json:"object"`
	Type           string          `json:"type"`
	Description    string          `json:"description"`
	DefaultEnabled bool            `json:"default_enabled"`
	Schema         json.RawMessage `json:"schema"`
}

func (s *Server) listEventTypes(_ context.Context, c *call) (any, error) {
	page, err := pageParams(c.r)
	if err != nil {
		return nil, err
	}
	entries, err := events.CatalogPage(page)
	if err != nil {
		return nil, err
	}
	list := &events.List[eventTypeBody]{HasMore: entries.HasMore}
	for _, e := range entries.Data {
		sch, _ := schema.Event(string(e.Type))
		list.Data = append(list.Data, eventTypeBody{Object: "event_type", Type: string(e.Type),
			Description: e.Description, DefaultEnabled: e.DefaultEnabled, Schema: sch})
	}
	return newList(c.r, list), nil
}

func (s *Server) getAccount(ctx context.Context, c *call) (any, error) {
	return events.GetMerchant(ctx, s.pool, s.keyring, c.scope)
}
