package delivery

// PruneBefore prunes what was created before a chosen time, so that a test
// can make history old without rewriting ids.
var PruneBefore = (*PruneWorker).prune
