-- Each API process renews its streams' leases every few seconds and, in the
-- same statement, drops the leases that expired (those of processes that
-- died): read by their expiry, not by a scan of every open stream.
create index event_streams_expiry_idx on event_streams (expires_at);
