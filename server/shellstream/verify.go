package shellstream

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/models/session"
)

// ErrAgentUnavailable marks a re-verification the SPIRE agent could not
// answer (as opposed to a token it refused).
var ErrAgentUnavailable = errors.New("spire agent unavailable")

// verifiedSAT is what a verified token proves.
type verifiedSAT struct {
	id     spiffeid.ID
	expiry time.Time
}

// satVerifier checks SATs: from a cache of validated tokens (cached mode)
// or against the agent (re-verified mode).
type satVerifier struct {
	api      WorkloadAPI
	bundles  Bundles
	audience string
	clock    Clock
	maxCache int

	mu    sync.Mutex
	cache map[[32]byte]verifiedSAT

	// Counters for tests and state.
	agentCalls, cacheHits, localValidations atomic.Uint64
}

func newSATVerifier(api WorkloadAPI, b Bundles, audience string, clock Clock, maxCache int) *satVerifier {
	return &satVerifier{api: api, bundles: b, audience: audience, clock: clock, maxCache: maxCache, cache: map[[32]byte]verifiedSAT{}}
}

// verify checks token in the given mode.
func (v *satVerifier) verify(ctx context.Context, token string, mode session.Verification) (verifiedSAT, error) {
	if mode == session.Reverified {
		return v.reverify(ctx, token)
	}
	key := sha256.Sum256([]byte(token))
	now := v.clock.Now()
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Before(c.expiry) {
		v.cacheHits.Add(1)
		return c, nil
	}
	if !bundlesReady(v.bundles) {
		return verifiedSAT{}, fmt.Errorf("validate sat: %w: no trust bundles yet", ErrAgentUnavailable)
	}
	v.localValidations.Add(1)
	svid, err := jwtsvid.ParseAndValidate(token, v.bundles, []string{v.audience})
	if err != nil {
		return verifiedSAT{}, fmt.Errorf("validate sat: %w", err)
	}
	c = verifiedSAT{id: svid.ID, expiry: svid.Expiry}
	v.mu.Lock()
	if len(v.cache) >= v.maxCache {
		v.evictLocked(now)
	}
	v.cache[key] = c
	v.mu.Unlock()
	return c, nil
}

// evictLocked drops expired entries, and everything when none had
// expired: a full cache of live tokens costs re-validations, never a
// wrong answer.
func (v *satVerifier) evictLocked(now time.Time) {
	for k, c := range v.cache {
		if !now.Before(c.expiry) {
			delete(v.cache, k)
		}
	}
	if len(v.cache) >= v.maxCache {
		clear(v.cache)
	}
}

func (v *satVerifier) reverify(ctx context.Context, token string) (verifiedSAT, error) {
	if v.api == nil {
		return verifiedSAT{}, fmt.Errorf("re-verify sat: %w: no Workload API", ErrAgentUnavailable)
	}
	v.agentCalls.Add(1)
	svid, err := v.api.ValidateJWTSVID(ctx, token, v.audience)
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return verifiedSAT{}, fmt.Errorf("re-verify sat: %w: %v", ErrAgentUnavailable, err)
		}
		return verifiedSAT{}, fmt.Errorf("re-verify sat: %w", err)
	}
	// The agent checked signature, audience and validity; the subject is
	// read back from the token it accepted.
	return verifiedSAT{id: svid.ID, expiry: svid.Expiry}, nil
}

// CacheStats reports the verifier's counters: agent re-verifications,
// cache hits, and local validations against the JWT bundles.
type CacheStats struct {
	AgentCalls, CacheHits, LocalValidations uint64
}
