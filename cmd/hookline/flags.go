package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/delivery"
)

// choice is a flag whose value is one of a few words. A value outside them
// is refused while the command line is parsed, a usage error naming every
// allowed value (`--status nope`), and shells complete the words.
type choice struct {
	value   string
	allowed []string
}

func newChoice(value string, allowed ...string) *choice {
	return &choice{value: value, allowed: allowed}
}

// add defines the flag on cmd, with its words for shell completion.
func (c *choice) add(cmd *cobra.Command, name, usage string) {
	cmd.Flags().Var(c, name, usage)
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(c.allowed, cobra.ShellCompDirectiveNoFileComp)) // the flag exists
}

func (c *choice) String() string { return c.value }

// Type is what the help shows for the value: the words themselves.
func (c *choice) Type() string { return strings.Join(c.allowed, "|") }

func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("must be %s", orList(c.allowed))
	}
	c.value = s
	return nil
}

// when is a flag holding a point in time as the operator commands take it:
// RFC 3339, or a Go duration meaning that long ago (delivery.ParseWhen). It
// is checked while the command line is parsed and read against the command's
// own clock.
type when struct{ raw string }

func (w *when) String() string { return w.raw }
func (w *when) Type() string   { return "WHEN" }

func (w *when) Set(s string) error {
	if _, err := delivery.ParseWhen(s, time.Now()); err != nil {
		return err
	}
	w.raw = s
	return nil
}

// at is the time the flag names, now being the command's clock; the zero time
// when the flag is not set.
func (w *when) at(now time.Time) time.Time {
	if w.raw == "" {
		return time.Time{}
	}
	t, _ := delivery.ParseWhen(w.raw, now) // checked by Set
	return t
}

// orList is "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
