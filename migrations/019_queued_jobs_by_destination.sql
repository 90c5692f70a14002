-- The queued delivery jobs of each destination. River fetches a queue's jobs
-- first in, first out, so a merchant's burst of thousands of jobs to a dead
-- endpoint stands in front of every other merchant's: each is
-- fetched, loaded and refused before River reaches the next tenant's. The
-- first job that finds its destination failing withdraws the rest
-- (delivery/withdraw.go: it sets them aside, scheduled a minute ahead at
-- priority 4, then deletes them and parks their deliveries), reading them
-- here by the destination each job carries in its args
-- (DeliverArgs.Destination).
--
-- Partial on the queued and set-aside states: an entry is written when a
-- job is inserted available (or made available by River's scheduler) or set
-- aside, and a job that moves on to running or completed writes none, so the
-- index holds what is queued now (and the dead entries of jobs fetched since
-- the last vacuum), not the destination's history of jobs. hookline queues
-- no other job at priority 4, so the index does not hold the scheduled
-- retries. Jobs queued before this migration carry no destination and are
-- not withdrawn; they are refused one by one, as before.
--
-- The build blocks writes to river_job (every fan-out, fetch and completion)
-- while it lasts: on a large river_job it is built beforehand with create
-- index concurrently (the README's Deployment section), which this statement
-- then leaves as it is; lock_timeout makes the migration fail, to be run
-- again, rather than queue every write behind a long transaction.
set local lock_timeout = '5s';

create index if not exists river_job_queued_destination_idx on river_job ((args->>'destination'), id)
    where kind = 'deliver' and (state = 'available' or (state = 'scheduled' and priority = 4));
