package dbtest

import (
	"bytes"
	"sync"
)

// LogBuffer is a log that a test reads while the engine under test (its
// HTTP handlers, its River workers) writes it from other goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the log.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is what the log holds so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len is the log's length so far.
func (b *LogBuffer) Len() int { return len(b.String()) }
