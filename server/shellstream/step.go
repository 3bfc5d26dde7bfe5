package shellstream

import (
	"context"
	"fmt"

	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/posture"
)

type step struct{ s *Service }

// Step is the posture plan's handshake step: it runs after the VPP
// segment and the BPF map on escalation (the data plane tightens first).
func (s *Service) Step() posture.Step { return step{s} }

func (step) Name() string         { return "handshake" }
func (step) Stage() posture.Stage { return posture.StageHandshake }
func (st step) Apply(ctx context.Context, t posture.Transition) error {
	_, err := st.s.ApplyLevel(ctx, t.To, t.Accord)
	return err
}

// Outcome counts what an ApplyLevel did to the live sessions.
type Outcome struct {
	Kept, Drained, Terminated int
}

// ApplyLevel makes the node's level `level` under accord a (the accords of
// the stricter levels come from Options.Accords): new handshakes decide
// under it at once, and every live session is re-evaluated at the lower
// of it and its initiator's level. Drains are started (DRAIN sent, the
// deadline armed) and not waited for; terminated sessions are waited for
// until they are torn down (their endpoint closed, their state closed) or
// ctx ends.
func (s *Service) ApplyLevel(ctx context.Context, level uint8, a accord.Accord) (Outcome, error) {
	if !accord.Valid(level) {
		return Outcome{}, fmt.Errorf("apply handshake policy: level %d out of range", level)
	}
	var rules [accord.MaxLevel + 1]session.Rules
	for l := accord.MinLevel; l <= accord.MaxLevel; l++ {
		la, err := s.accordOf(l, level, a)
		if err != nil {
			return Outcome{}, fmt.Errorf("apply handshake policy: %w", err)
		}
		rules[l] = session.RulesFor(la)
	}
	s.mu.Lock()
	s.level = level
	s.gen++
	s.rules = rules
	all := make([]*live, 0, len(s.live))
	for _, l := range s.live {
		all = append(all, l)
	}
	s.mu.Unlock()

	rulesOf := func(l uint8) session.Rules { return rules[l] }
	var out Outcome
	var ended []*live
	for _, l := range all {
		switch l.reevaluate(level, rulesOf) {
		case session.Keep:
			out.Kept++
		case session.Drain:
			out.Drained++
		case session.Terminate:
			out.Terminated++
			ended = append(ended, l)
		}
	}
	for _, l := range ended {
		select {
		case <-l.done:
		case <-ctx.Done():
			return out, fmt.Errorf("apply handshake policy: wait for %d terminated sessions: %w", len(ended), ctx.Err())
		}
	}
	s.log.Info("handshake policy applied", "level", level, "handshake", a.Handshake, "sessions_kept", out.Kept,
		"sessions_drained", out.Drained, "sessions_terminated", out.Terminated)
	return out, nil
}

func (s *Service) accordOf(l, level uint8, a accord.Accord) (accord.Accord, error) {
	if l == level {
		return a, nil
	}
	if s.opts.Accords != nil {
		return s.opts.Accords.Accord(l)
	}
	return accord.Default(l)
}
