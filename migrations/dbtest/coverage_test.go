package dbtest

import (
	"slices"
	"testing"
)

func TestStatements(t *testing.T) {
	got, err := Statements("testdata/statements")
	if err != nil {
		t.Fatal(err)
	}
	var sqls []string
	for _, st := range got {
		sqls = append(sqls, st.SQL)
	}
	want := []string{
		"select id, name from things",
		"select id, name from things where id = $1",
		"select id, name from things where owner = $3",
		"select id, name from things where owner = $3 and kind = $4",
		"insert into things (id) values ($1)",
		"update things t set name = $2 where id = $1",
		"with recursive k (id) as (select 1) delete from things where id in (select id from k)",
		"WITH old AS MATERIALIZED (select 1) select * from old",
		"delete from things where id = $1",
	}
	if !slices.Equal(sqls, want) {
		t.Errorf("got\n%q\nwant\n%q", sqls, want)
	}
}

func TestUncovered(t *testing.T) {
	stmts := []Statement{
		{"a.go:1", "select id from things where owner = $3"},
		{"a.go:2", "insert into things (id) values ($1)"},
		{"a.go:3", "select id from things where kind = $1"},
	}
	checked.Lock()
	saved := checked.stmts
	checked.stmts = []string{squash("select id from things\n\twhere owner = $3 and id < $1 order by id desc limit $2")}
	checked.Unlock()
	t.Cleanup(func() {
		checked.Lock()
		checked.stmts = saved
		checked.Unlock()
	})
	missing, stale := Uncovered(stmts, []Exemption{
		{"insert into things (id)\n\tvalues ($1)", "writes the row it is given"},
		{"delete from things where id = $1", "gone"},
	})
	if len(missing) != 1 || missing[0].Pos != "a.go:3" {
		t.Errorf("missing %v, want a.go:3 only", missing)
	}
	if len(stale) != 1 || stale[0].Why != "gone" {
		t.Errorf("stale %v, want the delete's exemption only", stale)
	}
}
