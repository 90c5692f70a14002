package delivery

// PruneBefore prunes what was created before a chosen time, so that a test
// can make history old without rewriting ids.
var PruneBefore = (*PruneWorker).prune

// SetReconcileWindow makes each of w's windows n deliveries, so that a test
// walks several.
func SetReconcileWindow(w *ReconcileWorker, n int) { w.windowSize = n }

// Statements the plan-coverage check exempts by name.
const (
	TakeTokensSQL        = takeTokens
	StartBucketSQL       = startBucket
	ReconcileSettingsSQL = reconcileSettings
)
