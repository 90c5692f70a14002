package dbtest

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// checked holds the text (normalized by squash) of every statement
// CheckPlans has run in this test process. It is package state on purpose:
// the plan tests of a package and the coverage check that follows them
// (RunWithPlanCoverage) share nothing else, and a test binary is one package.
var checked struct {
	sync.Mutex
	stmts []string
}

func recordChecked(sql string) {
	checked.Lock()
	defer checked.Unlock()
	checked.stmts = append(checked.stmts, squash(sql))
}

// squash collapses every run of white space to one space, so that a
// statement's text in the source and the text a function sends compare
// whatever their indentation.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// Exemption is a statement that needs no plan test, with the one-line reason
// a reviewer agreed to: a write of the rows it is given, a lookup that reads
// nothing but settings. SQL is the statement's text as Statements finds it
// (white space does not matter); it must match a statement exactly, so an
// exemption lapses, and fails the check, when its statement changes.
type Exemption struct {
	SQL string
	Why string
}

// Statement is a SQL statement written in a package's source, at Pos.
type Statement struct {
	Pos string
	SQL string
}

// statementStart tells a SQL statement from other strings that begin with the
// same words (routes such as "DELETE /v1/…", error contexts such as "update
// endpoint: %w"): each verb must be followed by what that statement needs.
var statementStart = regexp.MustCompile(`(?is)^\s*(select\s|insert\s+into\s|update\s+\w+\s+(as\s+\w+\s+|\w+\s+)?set\s|` +
	`delete\s+from\s|with\s+(recursive\s+)?\w+\s*(\([^)]*\)\s*)?as\s*(not\s+materialized\s*|materialized\s*)?\()`)

// Statements returns the SQL statements in the non-test Go files of dir: each
// string constant, literal, or concatenation of them (constants of the
// package or the function included, folded as the compiler folds them) that
// starts like a statement. Where a statement is composed at run time
// (`query + end`), the folded constant part is what is returned: a checked
// statement that contains it covers it. Strings passed to fmt and errors
// functions are messages, not statements.
func Statements(dir string) ([]Statement, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]ast.Expr{} // the package's constants
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			collectConsts(d, consts)
		}
	}
	var out []Statement
	for _, f := range parsed {
		out = append(out, fileStatements(fset, f, consts)...)
	}
	return out, nil
}

// collectConsts adds the string constants a declaration declares to consts.
func collectConsts(n ast.Node, consts map[string]ast.Expr) {
	g, ok := n.(*ast.GenDecl)
	if !ok || g.Tok != token.CONST {
		return
	}
	for _, spec := range g.Specs {
		vs := spec.(*ast.ValueSpec)
		for i, name := range vs.Names {
			if i < len(vs.Values) {
				consts[name.Name] = vs.Values[i]
			}
		}
	}
}

// fileStatements walks one file. Constants declared inside a function are
// known by name within the whole file, a simplification that can only make
// more strings fold into statements, never fewer.
func fileStatements(fset *token.FileSet, f *ast.File, pkgConsts map[string]ast.Expr) []Statement {
	consts := map[string]ast.Expr{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ds, ok := n.(*ast.DeclStmt); ok {
			collectConsts(ds.Decl, consts)
		}
		return true
	})
	for k, v := range pkgConsts {
		if _, ok := consts[k]; !ok {
			consts[k] = v
		}
	}
	var out []Statement
	add := func(pos token.Pos, s string) {
		if statementStart.MatchString(s) {
			out = append(out, Statement{Pos: fset.Position(pos).String(), SQL: squash(s)})
		}
	}
	var visit func(n ast.Node) bool
	visit = func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if !isMessage(n.Fun) {
				return true
			}
			ast.Inspect(n.Fun, visit)
			for _, arg := range n.Args {
				if _, ok := arg.(*ast.BasicLit); !ok {
					ast.Inspect(arg, visit)
				}
			}
			return false
		case *ast.BinaryExpr:
			if n.Op != token.ADD {
				return true
			}
			// A concatenation: its maximal runs of constant operands, each
			// folded, are the candidates; the other operands are walked.
			var run []string
			var at token.Pos
			flush := func() {
				if len(run) > 0 {
					add(at, strings.Join(run, ""))
				}
				run = nil
			}
			for _, op := range flattenAdd(n) {
				if s, ok := fold(op, consts, 0); ok {
					if len(run) == 0 {
						at = op.Pos()
					}
					run = append(run, s)
					continue
				}
				flush()
				ast.Inspect(op, visit)
			}
			flush()
			return false
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				s, _ := strconv.Unquote(n.Value)
				add(n.Pos(), s)
			}
		}
		return true
	}
	ast.Inspect(f, visit)
	return out
}

// isMessage reports whether fun is a function whose string arguments are
// messages: fmt's and errors'.
func isMessage(fun ast.Expr) bool {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "fmt" || pkg.Name == "errors")
}

// flattenAdd lists the operands of a chain of + in order.
func flattenAdd(e ast.Expr) []ast.Expr {
	if p, ok := e.(*ast.ParenExpr); ok {
		return flattenAdd(p.X)
	}
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return append(flattenAdd(b.X), flattenAdd(b.Y)...)
	}
	return []ast.Expr{e}
}

// fold evaluates a constant string expression: literals, named constants
// and their concatenations.
func fold(e ast.Expr, consts map[string]ast.Expr, depth int) (string, bool) {
	if depth > 20 {
		return "", false
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		v, ok := consts[e.Name]
		if !ok {
			return "", false
		}
		return fold(v, consts, depth+1)
	case *ast.ParenExpr:
		return fold(e.X, consts, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := fold(e.X, consts, depth+1)
		if !ok {
			return "", false
		}
		y, ok := fold(e.Y, consts, depth+1)
		return x + y, ok
	}
	return "", false
}

// Uncovered returns the statements that no statement CheckPlans has checked
// in this process contains and that exempt does not name, and the
// exemptions that name no statement (stale: their statement changed or is
// gone).
func Uncovered(stmts []Statement, exempt []Exemption) (missing []Statement, stale []Exemption) {
	checked.Lock()
	done := slices.Clone(checked.stmts)
	checked.Unlock()
	used := make([]bool, len(exempt))
	for _, st := range stmts {
		covered := false
		for _, c := range done {
			if strings.Contains(c, st.SQL) {
				covered = true
				break
			}
		}
		for i, e := range exempt {
			if squash(e.SQL) == st.SQL {
				covered, used[i] = true, true
			}
		}
		if !covered {
			missing = append(missing, st)
		}
	}
	for i, e := range exempt {
		if !used[i] {
			stale = append(stale, e)
		}
	}
	return missing, stale
}

// RunWithPlanCoverage runs a package's tests (m.Run) and then, when they all
// passed and every test ran against a database (TEST_DATABASE_URL set, no
// -run, -skip or -list), fails the test binary for each SQL statement in the
// package's source (Statements of the working directory, which is the
// package's) that no plan test checked and exempt does not name, and for each
// exemption that names no statement. A package's TestMain calls it, so that
// a new statement without a plan test fails `go test ./...`. It returns the
// exit code.
func RunWithPlanCoverage(m *testing.M, exempt []Exemption) int {
	code := m.Run()
	if code != 0 || !allTestsRan() {
		return code
	}
	return reportCoverage(os.Stderr, ".", exempt)
}

// allTestsRan reports whether this run is one in which every plan test ran:
// a selection of tests would leave statements unchecked that are covered.
func allTestsRan() bool {
	if os.Getenv("TEST_DATABASE_URL") == "" {
		return false
	}
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

func reportCoverage(w io.Writer, dir string, exempt []Exemption) int {
	stmts, err := Statements(dir)
	if err != nil {
		fmt.Fprintf(w, "plan coverage: read the package's source: %v\n", err)
		return 1
	}
	missing, stale := Uncovered(stmts, exempt)
	for _, st := range missing {
		fmt.Fprintf(w, "plan coverage: %s: no plan test (dbtest.CheckPlans) ran this statement, and it is not exempt:\n\t%s\n", st.Pos, st.SQL)
	}
	for _, e := range stale {
		fmt.Fprintf(w, "plan coverage: exemption matches no statement of the package (changed or gone? review it again):\n\t%s\n", squash(e.SQL))
	}
	if len(missing) > 0 || len(stale) > 0 {
		fmt.Fprintf(w, "FAIL: %d statements without a plan test, %d stale exemptions (see README, \"Plan tests\")\n", len(missing), len(stale))
		return 1
	}
	return 0
}
