package src

import (
	"errors"
	"fmt"
)

const columns = `select id, name
	from things`

const byID = columns + ` where id = $1`

func routes() {
	handle("DELETE /v1/things/{id}")
	handle("update things")
}

func list(db any, filter string) error {
	const base = columns + ` where owner = $3`
	q := base
	if filter != "" {
		q = base + ` and kind = $4`
	}
	run(db, q+" order by id desc limit $2")
	run(db, `insert into things (id) values ($1)`)
	run(db, `update things t set name = $2 where id = $1`)
	run(db, `with recursive k (id) as (select 1) delete from things where id in (select id from k)`)
	run(db, `WITH old AS MATERIALIZED (select 1) select * from old`)
	if err := errors.New("select things: failed"); err != nil {
		return fmt.Errorf("update thing: %w", err)
	}
	return fmt.Errorf("insert into things: %w", run(db, "delete from things where id = "+"$1"))
}

func handle(string)         {}
func run(any, string) error { return nil }
