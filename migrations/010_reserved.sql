-- Intentionally a no-op. Another branch numbers its migration 010, and tern
-- refuses a gap in the numbers: this file holds the place so that 011 runs on
-- the toolkit branch. Drop it when that branch's 010 is merged.
select 1;
