package tree

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestSplitMatchesOneCore: a transaction whose list entries bulkMerge
// builds on both cores and whose changes analyze walks in two runs ends
// as the same transaction merged entry by entry and walked once: the
// same error (the first in document order) or the same Validate result,
// the same changes in the same order, the same tree and, once
// committed, the same leafref indexes. The cases are random bulk Sets
// of routes and devices over trees with and without entries before the
// Set: updates and replaces, deletes, entries given twice, and entries
// in error (a missing key, a value out of range, a key its config
// contradicts, a leafref to nothing, a mandatory leaf unset) anywhere.
func TestSplitMatchesOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	schema := testSchema(t)
	rng := rand.New(rand.NewPCG(17, 2))
	split, errs, invalid := 0, 0, 0
	for i := range 300 {
		c := randomSplitCase(rng)
		one := runSplitCase(t, schema, c, math.MaxInt, math.MaxInt, 64)
		// Slack 0: analyze's runs outgrow their room; with it, bulkMerge's
		// parts outgrow theirs.
		for _, slack := range []int{64, 0} {
			two := runSplitCase(t, schema, c, 4, 8, slack)
			if !reflect.DeepEqual(one, two) {
				t.Fatalf("case %d %v, slack %d:\none entry at a time: %+v\non both cores: %+v", i, c, slack, one, two)
			}
		}
		switch {
		case one.err != "":
			errs++
		case one.validate != "":
			invalid++
		}
		if one.err == "" && c.emptyBefore {
			split++
		}
	}
	t.Logf("%d cases in error, %d invalid, %d with lists empty before the Set and no error", errs, invalid, split)
	if split < 20 {
		t.Fatalf("only %d cases merged a bulk list into an empty one without error", split)
	}
}

type splitOp struct {
	kind string // update, replace or delete
	path string
	json string
}

type splitCase struct {
	before      []splitOp
	set         []splitOp
	emptyBefore bool
}

type splitResult struct {
	err, validate string
	changes       []string
	tree          []string
	targets, refs string
}

func randomSplitCase(rng *rand.Rand) splitCase {
	var c splitCase
	c.emptyBefore = rng.IntN(2) == 0
	if !c.emptyBefore {
		c.before = append(c.before,
			splitOp{"update", "/top/devices", devicesJSON(rng, 0, -1)},
			splitOp{"update", "/top/routes", randomRoutes(rng, 3+rng.IntN(20), 0)})
	}
	for range 1 + rng.IntN(3) {
		switch rng.IntN(6) {
		case 0:
			c.set = append(c.set, splitOp{"delete", "/top/routes", ""})
		case 1:
			c.set = append(c.set, splitOp{"update", "/top/devices", devicesJSON(rng, 0.05, 4+rng.IntN(30))})
		case 2:
			c.set = append(c.set, splitOp{"replace", "/top/routes", randomRoutes(rng, rng.IntN(60), 0.02)})
		default:
			c.set = append(c.set, splitOp{"update", "/top/routes", randomRoutes(rng, rng.IntN(60), 0.02)})
		}
	}
	return c
}

// devicesJSON is n devices, each missing its mandatory address with
// probability bad; n < 0 is all the devices routes may refer to.
func devicesJSON(rng *rand.Rand, bad float64, n int) string {
	var b strings.Builder
	b.WriteString(`{"device":[`)
	all := n < 0
	if all {
		n = 40
	}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		name := fmt.Sprintf("d%d", rng.IntN(40))
		if all {
			name = fmt.Sprintf("d%d", i)
		}
		addr := `,"address":"a` + name + `"`
		if rng.Float64() < bad {
			addr = ""
		}
		b.WriteString(`{"name":"` + name + `","config":{"name":"` + name + `"` + addr + `}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// randomRoutes is n routes with prefixes drawn from a small pool (some
// given twice), each in error with probability bad.
func randomRoutes(rng *rand.Rand, n int, bad float64) string {
	var b strings.Builder
	b.WriteString(`{"route":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := fmt.Sprintf(`"10.%d.%d.0/24"`, rng.IntN(2), rng.IntN(100))
		table := 1 + rng.IntN(2)
		keys := fmt.Sprintf(`"prefix":%s,"table":%d,`, p, table)
		cfg := fmt.Sprintf(`"prefix":%s,"table":%d,"device":"eth%d"`, p, table, rng.IntN(3))
		if rng.IntN(3) == 0 {
			cfg += fmt.Sprintf(`,"metric":%d`, rng.IntN(1000))
		}
		if rng.IntN(4) == 0 {
			cfg += fmt.Sprintf(`,"dev-ref":"d%d"`, rng.IntN(40))
		}
		if rng.Float64() < bad {
			switch rng.IntN(4) {
			case 0:
				keys = fmt.Sprintf(`"table":%d,`, table)
				cfg = `"device":"eth0"`
			case 1:
				cfg += `,"metric":5000`
			case 2:
				cfg = fmt.Sprintf(`"prefix":"10.9.9.0/24","table":%d`, table)
			default:
				cfg += `,"dev-ref":"nowhere"`
			}
		}
		b.WriteString(`{` + keys + `"config":{` + cfg + `}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// runSplitCase commits c.before, then applies c.set in one transaction
// with bulkMerge and analyze splitting at the given sizes, analyze's
// runs with the given slack.
func runSplitCase(t *testing.T, schema *Schema, c splitCase, mergeMin, analysisMin, slack int) splitResult {
	t.Helper()
	defer func(m, a, s, g int) {
		splitMergeMin, splitAnalysisMin, analysisSlack, touchesGuess = m, a, s, g
	}(splitMergeMin, splitAnalysisMin, analysisSlack, touchesGuess)
	splitMergeMin, splitAnalysisMin, analysisSlack = mergeMin, analysisMin, slack
	if slack == 0 {
		touchesGuess = 1
	}
	tr := New(schema)
	if len(c.before) > 0 {
		tx, err := tr.Begin(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range c.before {
			if err := applySplitOp(t, tx, op); err != nil {
				t.Fatalf("before: %v", err)
			}
		}
		if err := tx.Validate(); err != nil {
			t.Fatalf("before: %v", err)
		}
		tx.Commit()
	}
	var r splitResult
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range c.set {
		if err := applySplitOp(t, tx, op); err != nil {
			r.err = err.Error()
			tx.Rollback()
			return r
		}
	}
	if err := tx.Validate(); err != nil {
		r.validate = err.Error()
	}
	for _, ch := range tx.Changes() {
		r.changes = append(r.changes, fmt.Sprintf("%d %s %v %v", ch.Op, ch.Path(), ch.Val, ch.Old))
	}
	_ = eachInst(tr.root, func(in *Inst) error {
		for _, ch := range in.s.Children {
			if v := in.val(ch.slot); v.IsSet() {
				r.tree = append(r.tree, in.PathString()+"/"+ch.Name+"="+v.String())
			}
		}
		return nil
	})
	slices.Sort(r.tree) // a list's entries walk in hash order
	if r.validate == "" {
		tx.Commit()
		r.targets, r.refs = fmt.Sprint(tr.targets), fmt.Sprint(tr.refs)
	} else {
		tx.Rollback()
	}
	return r
}

func applySplitOp(t *testing.T, tx *Txn, op splitOp) error {
	at := p(t, op.path)
	switch op.kind {
	case "delete":
		return tx.Delete(at)
	case "replace":
		return tx.Replace(at, jsonVal(op.json))
	default:
		return tx.Update(at, jsonVal(op.json))
	}
}
