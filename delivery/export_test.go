package delivery

import "time"

// PruneBefore prunes what was created before a chosen time, so that a test
// can make history old without rewriting ids.
var PruneBefore = (*PruneWorker).prune

// SetReconcileWindow makes each of w's windows n deliveries, so that a test
// walks several.
func SetReconcileWindow(w *ReconcileWorker, n int) { w.windowSize = n }

// SetReplayCountTimeout bounds d's replay counts by t, so that a test
// sees a count time out without waiting replayCountTimeout.
func SetReplayCountTimeout(d *Dispatcher, t time.Duration) { d.countTimeout = t }

// SetFillBatch makes each of w's fill transactions n deliveries, so that a
// test fills several.
func SetFillBatch(w *FillEventTypesWorker, n int) { w.batch = n }

// Statements the plan-coverage check exempts by name.
const (
	TakeTokensSQL        = takeTokens
	StartBucketSQL       = startBucket
	ReconcileSettingsSQL = reconcileSettings
)

// SetAsidePriority marks the jobs a withdrawal set aside.
const SetAsidePriority = setAsidePriority
