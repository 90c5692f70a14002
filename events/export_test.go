package events

// ExpireDue is the expiry sweep's statement, for its plan test.
const ExpireDue = expireDue
