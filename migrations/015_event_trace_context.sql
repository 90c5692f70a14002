-- The W3C trace context (a traceparent, 55 characters) of the span that
-- caused each event, usually the API request's: the delivery worker reads it
-- with the event (the join it already makes) and makes each attempt's span
-- its child, however much later and in whichever process the attempt runs,
-- so that the attempts descend from the request in the trace. Null for an
-- event written while tracing was off, or by a job no span covers (the
-- expiry sweep). Written by the statement that inserts the event.
--
-- A nullable column without a default: adding it rewrites nothing.
alter table events add column if not exists traceparent text;
