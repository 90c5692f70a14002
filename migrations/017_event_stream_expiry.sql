-- Each API process renews its streams' leases every few seconds and, in the
-- same statement, drops a bounded batch of the leases that expired (those of
-- processes that died): read by their expiry, not by a scan of every open
-- stream. Opening a stream drops its scope's expired leases through the
-- scope's index (see takeLease). Indexing expires_at makes a renewal's update
-- non-HOT, which costs little on a table of a row per open stream; the table
-- is small and its transactions short, so the build holds its writes briefly.
set local lock_timeout = '5s';
create index event_streams_expiry_idx on event_streams (expires_at);
