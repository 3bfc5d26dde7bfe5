package kernel

import (
	"context"

	"github.com/guildhouse-co/kedge/dataplane/route/internal/rtnl"
)

// The kernel inserts a batch's routes inside the sendmsg that carries
// them, so a Patch that planned every add before sending the first kept
// one core idle while it planned (normalizing and encoding each route),
// then the other idle while it sent. A bulk Patch instead hands each
// batch, once planned, to a sender goroutine and plans the next while
// the kernel takes it. Batches go in the order planned, each in one
// sendmsg as before, so the messages, their results and what is done
// with them (after the last batch, on the Patch's goroutine) are the
// same; only the planning moves under the sends.

// sender sends a plan's adds, part by part, from a goroutine of its own.
type sender struct {
	ctx   context.Context
	conn  *rtnl.Conn
	batch int
	// sent is the plan's routes sent, sized for every add up front so the
	// planner's appends never move it: an echo updates the route of an
	// add already sent while later ones are being appended.
	sent  []rtnl.Route
	parts chan part
	done  chan struct{}
	// results and err are ExecEcho's, over every part; read after done.
	results []error
	err     error
}

// part is the adds from start on, planned and not yet sent.
type part struct {
	start int
	reqs  []rtnl.Request
}

// startSender starts sending for a plan whose sent routes can grow to
// cap(sent) without moving.
func startSender(ctx context.Context, conn *rtnl.Conn, batch int, sent []rtnl.Route) *sender {
	s := &sender{ctx: ctx, conn: conn, batch: batch, sent: sent[:cap(sent)],
		parts: make(chan part, 4), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *sender) run() {
	defer close(s.done)
	for pt := range s.parts {
		if s.err != nil {
			// As ExecEcho does: once the socket failed or ctx is done,
			// the rest are not sent and carry that error.
			for range pt.reqs {
				s.results = append(s.results, s.err)
			}
			continue
		}
		res, err := s.conn.ExecEcho(s.ctx, pt.reqs, s.batch, func(i int, r rtnl.Route) {
			if j := pt.start + i; j < len(s.sent) {
				learnRoute(&s.sent[j], r)
			}
		})
		s.results = append(s.results, res...)
		s.err = err
	}
}

// send queues the adds from start on; the caller no longer changes them.
func (s *sender) send(start int, reqs []rtnl.Request) { s.parts <- part{start: start, reqs: reqs} }

// wait sends nothing more and returns one error per add queued, in order,
// and the exchange's error, as ExecEcho does.
func (s *sender) wait() ([]error, error) {
	close(s.parts)
	<-s.done
	return s.results, s.err
}
