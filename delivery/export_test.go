package delivery

// SetReconcileWindow makes each of w's windows n deliveries, so that a test
// walks several.
func SetReconcileWindow(w *ReconcileWorker, n int) { w.windowSize = n }
