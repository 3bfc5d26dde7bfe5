package shmtest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
)

func TestRecordsAndFails(t *testing.T) {
	ctx := context.Background()
	var w Writer
	steps := []shm.Config{{Level: 5}, {Level: 5}, {Level: 1, Flags: 2}}
	for _, c := range steps {
		if err := w.Set(ctx, c); err != nil {
			t.Fatalf("Set(%+v): %v", c, err)
		}
	}
	w.Fail(1, nil)
	if err := w.Set(ctx, shm.Config{Level: 3}); !errors.Is(err, ErrInjected) {
		t.Fatalf("Set after Fail: got %v, want ErrInjected", err)
	}
	if err := w.Set(ctx, shm.Config{Level: 9}); !errors.Is(err, shm.ErrInvalidLevel) {
		t.Fatalf("Set(level 9): got %v, want ErrInvalidLevel", err)
	}
	want := append(steps, shm.Config{Level: 3}, shm.Config{Level: 9})
	if diff := cmp.Diff(want, w.Calls()); diff != "" {
		t.Errorf("Calls() mismatch (-want +got):\n%s", diff)
	}
	if got := w.State(); got != (shm.Config{Level: 1, Flags: 2}) {
		t.Errorf("State() = %+v, want level 1 flags 2", got)
	}
	if got := w.Writes(); got != 2 {
		t.Errorf("Writes() = %d, want 2 (the repeated level 5 is not a write)", got)
	}
}

// The fake and the real writer both fit the contract.
var (
	_ shm.Backend = (*Writer)(nil)
	_ shm.Backend = (*segment.Writer)(nil)
)
