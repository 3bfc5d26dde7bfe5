package store

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// The validators, the CommitCheck and the annotation only read a
// proposed commit: the tree as it will be, its changes and the version
// it started from. A bulk commit (100,000 routes) spends about 45 ms in
// the three one after another on one core while the other core encodes
// the log record, so they run at once there; what the commit decides is
// the same as run one after another.

// judge decides a config commit on its changes and returns its
// annotation (nil without an Annotate). The validators' errors, joined
// in the order the validators were added, refuse it first; else the
// check's error. A commit of fewer than splitEncodeMin changes runs them
// one after another and annotates only what was allowed; a bulk one runs
// each validator, the check and the annotation on a goroutine of its own
// and waits for all of them, so the check may run even when a validator
// refuses.
func (s *Store) judge(ctx context.Context, tx *tree.Txn, changes []tree.Change, check CommitCheck) ([]byte, error) {
	p := Proposed{Tree: s.t, Changes: changes, tx: tx}
	if len(changes) < splitEncodeMin {
		if err := s.runValidators(changes); err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(p); err != nil {
				return nil, err
			}
		}
		if s.annotate == nil {
			return nil, nil
		}
		return s.annotate(ctx, changes), nil
	}
	var (
		wg       sync.WaitGroup
		verrs    = make([]error, len(s.validators))
		checkErr error
		ann      []byte
	)
	for i, v := range s.validators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verrs[i] = v.run(s.t, changes)
		}()
	}
	if check != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkErr = check(p)
		}()
	}
	if s.annotate != nil {
		ann = s.annotate(ctx, changes)
	}
	wg.Wait()
	if err := errors.Join(verrs...); err != nil {
		return nil, err
	}
	if checkErr != nil {
		return nil, checkErr
	}
	return ann, nil
}

// runValidators runs the validators one after another.
func (s *Store) runValidators(changes []tree.Change) error {
	var errs []error
	for _, v := range s.validators {
		if err := v.run(s.t, changes); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run runs the validator if a change is under its prefix.
func (v validatorEntry) run(t *tree.Tree, changes []tree.Change) error {
	hit := v.prefix == ""
	for i := 0; !hit && i < len(changes); i++ {
		hit = strings.HasPrefix(changes[i].Node.Path, v.prefix)
	}
	if !hit {
		return nil
	}
	return v.fn(t, changes)
}
