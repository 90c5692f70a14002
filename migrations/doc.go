// Package migrations holds hookline's database schema as numbered SQL files and
// applies them, after River's own, with [Up].
//
// The files are embedded so the single hookline binary can migrate any database
// it is pointed at (`hookline migrate`, and `make run` on a fresh cluster). They
// run through tern's migrator, which tracks versions in hookline_schema_version;
// a file, once released, is never edited: a change is a new file.
package migrations
