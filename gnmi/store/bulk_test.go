package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store/internal/wal"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// TestBulkSetBadEntryChangesNothing: a 100,000-route JSON_IETF update
// with one bad entry, first or last, is refused with the error that
// names it and what is wrong, and changes nothing; the same update made
// good then commits. Malformed JSON, wrong types, unknown members, an
// object where a value belongs and a key mirror that disagrees with the
// entry's key each take a path of their own through the decoder and the
// merge.
func TestBulkSetBadEntryChangesNothing(t *testing.T) {
	const n = 100000
	s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCommit(t, s, upd(t, "/kedge/routes/route[prefix=192.0.2.0/24][table=254]/config", js(`{"device":"eth0"}`)))
	before, seq := dump(s), s.Seq()
	good := string(bulkRoutesJSON(n))
	// entry i as bulkRoutesJSON writes it, and where it starts.
	entry := func(i int) (string, int) {
		p := `"10.` + itoa(i/65536%256) + "." + itoa(i/256%256) + "." + itoa(i%256) + `/32"`
		e := `{"prefix":` + p + `,"table":254,"config":{"prefix":` + p + `,"table":254,"device":"rtA"}}`
		at := strings.Index(good, e)
		if at < 0 {
			t.Fatalf("entry %d not in the JSON", i)
		}
		return e, at
	}
	for _, i := range []int{0, n - 1} {
		e, at := entry(i)
		p := "10." + itoa(i/65536%256) + "." + itoa(i/256%256) + "." + itoa(i%256) + "/32"
		route := "/kedge/routes/route[prefix=" + p + "][table=254]"
		// The string left open runs to the next entry's first quote, or
		// to the end.
		unterminated := "invalid value at /kedge/routes: decode JSON at offset " + itoa(len(good)-1) + ": unterminated string"
		if i < n-1 {
			unterminated = "invalid value at /kedge/routes: decode JSON at offset " + itoa(at+len(e)-1+len(`,{"`)) + ": expected ',' or '}' in object"
		}
		for _, c := range []struct {
			name, from, to, want string
		}{
			{"malformed", `"table":254,"config"`, `"table":254,,"config"`,
				"invalid value at /kedge/routes: decode JSON at offset " + itoa(at+len(`{"prefix":"`+p+`","table":254,`)) + ": expected a member name"},
			{"unterminated", `"device":"rtA"}}`, `"device":"rtA}}`, unterminated},
			{"key of the wrong type", `"table":254,"config"`, `"table":"main","config"`,
				"malformed path at /kedge/routes/route[" + itoa(i) + `]: key table: "main" is not a uint32`},
			{"leaf of the wrong type", `"device":"rtA"`, `"device":7`, "invalid value at " + route + "/config/device: 7 is a number, want a string (ifname)"},
			{"object for a leaf", `"device":"rtA"`, `"device":{"name":"rtA"}`,
				"invalid value at " + route + "/config/device: map[string]interface {} is not a value of a string (ifname)"},
			{"array for a container", `"config":{`, `"config":[{`, "invalid value at " + route + "/config: a container takes a JSON object"},
			{"unknown member", `"device":"rtA"`, `"device":"rtA","colour":"red"`, "unknown path at " + route + `/config/colour: no node "colour" under /kedge/routes/route/config`},
			{"unknown member in the entry", `"table":254,"config"`, `"table":254,"colour":"red","config"`, "unknown path at " + route + `/colour: no node "colour" under /kedge/routes/route`},
			{"key mirror that disagrees", `"config":{"prefix":"` + p + `"`, `"config":{"prefix":"10.255.255.255/32"`,
				"list key leaf at " + route + `/config/prefix: value 10.255.255.255/32 differs from the list key ` + p},
			{"prefix that is no prefix", `{"prefix":"` + p + `"`, `{"prefix":"10.0.0.300/32"`, "malformed path at /kedge/routes/route[" + itoa(i) + `]: key prefix: "10.0.0.300/32" matches no member of union ip-prefix`},
		} {
			bad := strings.Replace(e, c.from, c.to, 1)
			if c.name == "array for a container" {
				bad = strings.Replace(bad, `}}`, `}]}`, 1)
			}
			if bad == e {
				t.Fatalf("%s: %q not in entry %d", c.name, c.from, i)
			}
			val := good[:at] + bad + good[at+len(e):]
			_, err := s.Commit(context.Background(), []Op{{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(val)}})
			if err == nil {
				t.Fatalf("entry %d, %s: committed", i, c.name)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("entry %d, %s:\n got %s\nwant %s", i, c.name, err, c.want)
			}
			if s.Seq() != seq || dump(s) != before {
				t.Fatalf("entry %d, %s: the refused commit changed the store", i, c.name)
			}
		}
	}
	c := mustCommit(t, s, Op{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(good)})
	if len(c.Changes) != 5*n {
		t.Fatalf("the good update made %d changes, want %d", len(c.Changes), 5*n)
	}
}

// TestBulkRecordBytes: the log records of a 1,000-route bulk commit, and
// of one that changes some of those routes and deletes others, are byte
// for byte those f7f6a79 wrote (their SHA-256), so a log written now
// replays as before and an old one as now.
func TestBulkRecordBytes(t *testing.T) {
	s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c1 := mustCommit(t, s, Op{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(string(bulkRoutesJSON(1000)))})
	var ops []Op
	for i := 0; i < 1000; i += 7 {
		if i%2 == 0 {
			ops = append(ops, del(t, kroute(i)))
		} else {
			ops = append(ops, upd(t, kroute(i)+"/config", js(`{"device":"eth`+itoa(i)+`","metric":`+itoa(i)+`}`)))
		}
	}
	c2 := mustCommit(t, s, ops...)
	for _, c := range []struct {
		changes []tree.Change
		want    string
	}{
		{c1.Changes, "82f95c1f3ad7aad47e30baac1475038501c21e88f3b3a729b42e0a6d841389fd"},
		{c2.Changes, "9024f61d5c44cf9c527033472efb0f8bab577441a2b49a7dfc06b681d8eac98a"},
	} {
		sum := sha256.Sum256(encodeRecord(7, 1, c.changes))
		if got := hex.EncodeToString(sum[:]); got != c.want {
			t.Errorf("record of %d changes: sha256 %s, want %s", len(c.changes), got, c.want)
		}
	}
}

// TestAddAllIsAdd: encoding changes as whole groups (addAll, which
// encodeRecord and encodeCommit use), and in 2 to 6 parts at once
// (addAllSplit, a bulk commit's: in the buffer's room, moved together
// after, or in buffers of their own), gives the bytes of adding them one by
// one (add, which the snapshot writer uses), for config and state
// changes of many instances in any order: groups split and joined, state
// changes inside a group, deletes.
func TestAddAllIsAdd(t *testing.T) {
	s, err := Open(t.TempDir(), kedgeSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c1 := mustCommit(t, s, Op{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(string(bulkRoutesJSON(40)))})
	c2 := mustCommit(t, s, del(t, kroute(3)), upd(t, kroute(5)+"/config", js(`{"device":"eth9","metric":3}`)))
	var state []Op
	for i := range 40 {
		if i != 3 { // deleted
			state = append(state, upd(t, kroute(i)+"/state/status", str("installed")))
		}
	}
	c3, err := s.CommitState(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(c1.Changes, c2.Changes, c3.Changes)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		changes := slices.Clone(all)
		if round > 0 {
			// Runs of a few changes moved as blocks keep some groups
			// whole and split others.
			for i := 0; i < len(changes); i++ {
				j := rng.IntN(len(changes))
				n := min(1+rng.IntN(4), len(changes)-max(i, j))
				for k := range n {
					changes[i+k], changes[j+k] = changes[j+k], changes[i+k]
				}
			}
		}
		one := newEncoder(0, 7, 1, 0)
		for _, c := range changes {
			one.add(c)
		}
		want := one.bytes()
		if got := encodeRecord(7, 1, changes); !bytes.Equal(got, want) {
			t.Fatalf("round %d: addAll wrote %d bytes, add one by one %d, not the same", round, len(got), len(want))
		}
		for parts := 2; parts <= 6; parts++ {
			// Parts in their own buffers, in regions some outgrow, and in
			// regions of the room encodeCommit makes.
			for _, room := range []int{0, 4, changeBytes} {
				split := newEncoder(0, 7, 1, room*len(changes))
				split.addAllSplit(changes, parts)
				if got := split.bytes(); !bytes.Equal(got, want) {
					t.Fatalf("round %d: %d parts, %d bytes a change, wrote %d bytes, add one by one %d, not the same",
						round, parts, room, len(got), len(want))
				}
			}
		}
	}
}

// TestBulkRecordEncodedAhead: a commit big enough for its changes to be
// encoded while the validators, the check and the annotation run logs
// the record encodeCommit makes of it, annotation and meta change
// included, byte for byte; refused by a validator or by the check, it changes nothing and
// logs nothing, and the store commits on.
func TestBulkRecordEncodedAhead(t *testing.T) {
	const n = splitEncodeMin/5 + 1000 // five changes a route
	dir := t.TempDir()
	s, err := Open(dir, kedgeSchema(t), Options{Annotate: annotate, KeepLog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refuse := "validator"
	s.AddValidator("/kedge/routes", func(_ *tree.Tree, ch []tree.Change) error {
		if refuse == "validator" {
			return errors.New("refused by the validator")
		}
		return nil
	})
	opts := CommitOptions{
		Check: func(p Proposed) error {
			if refuse == "check" {
				return errors.New("refused by the check")
			}
			return nil
		},
		UndoKey: "undo",
		Undo:    func([]Op) ([]byte, error) { return []byte("inverse"), nil },
	}
	ctx := context.WithValue(context.Background(), annKey{}, "alice")
	op := Op{Kind: OpUpdate, Path: path(t, "/kedge/routes"), Val: js(string(bulkRoutesJSON(n)))}
	before, seq := dump(s), s.Seq()
	for _, r := range []string{"validator", "check"} {
		refuse = r
		if _, err := s.CommitWith(ctx, []Op{op}, opts); err == nil || !strings.Contains(err.Error(), "refused by the "+r) {
			t.Fatalf("refused by the %s: %v", r, err)
		}
		if dump(s) != before || s.Seq() != seq {
			t.Fatalf("a commit refused by the %s changed the store", r)
		}
	}
	refuse = ""
	c, err := s.CommitWith(ctx, []Op{op}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Changes) < splitEncodeMin || len(c.Annotation) == 0 {
		t.Fatalf("%d changes, annotation %q: not a bulk commit encoded ahead", len(c.Changes), c.Annotation)
	}
	want := encodeCommit(c.Seq, c.Time.UnixNano(), c.Changes, "undo", []byte("inverse"), c.Annotation)
	var got [][]byte
	ids, err := wal.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := wal.Records(dir, id, func(p []byte) error {
			if r, err := decodeWALRecord(p); err == nil && r.seq == c.Seq && (r.kind == walCommit || r.kind == walCommitAnnotated) {
				got = append(got, bytes.Clone(p))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("%d records of commit %d logged, not the one encodeCommit makes (%d bytes)", len(got), c.Seq, len(want))
	}
}
