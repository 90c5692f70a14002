-- The queued delivery jobs of each destination. River fetches a queue's jobs
-- first in, first out, so a merchant's burst of thousands of jobs to a dead
-- or slow endpoint stands in front of every other merchant's: each is
-- fetched, loaded and refused before River reaches the next tenant's. The
-- first job that finds its destination slow, failing or paused withdraws the
-- rest in a few statements (delivery/withdraw.go, withdrawQueued: delete the
-- jobs and park their deliveries), reading them here by the destination each
-- job carries in its args (DeliverArgs.Destination).
--
-- Partial on the queued state: an entry is written when a job is inserted
-- available (or made available by River's scheduler), and a job that moves
-- on to running or completed writes none, so the index holds what is queued
-- now, not the destination's history of jobs (River keeps completed jobs
-- for 5 minutes, and a busy destination completes thousands a second).
-- Jobs queued before this migration carry no destination and are not
-- withdrawn; they are refused one by one, as before.
create index river_job_queued_destination_idx on river_job ((args->>'destination'), id)
    where state = 'available' and kind = 'deliver';
