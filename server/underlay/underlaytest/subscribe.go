package underlaytest

import (
	"fmt"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/oc"
)

// subscriber is one Subscribe stream's queue of notifications.
type subscriber struct {
	paths    []*gpb.Path
	synced   uint64 // the version its initial sync showed
	ch       chan *gpb.Notification
	overflow bool // set when ch was full; the stream then ends
}

// subscriberQueue bounds what a stream that does not read may hold.
const subscriberQueue = 1024

// Subscribe serves STREAM subscriptions in ON_CHANGE (or TARGET_DEFINED)
// mode: every leaf under the paths, a sync response, then each change of
// the running configuration as one notification (updated leaves, and
// deleted subtrees at the highest node that is gone).
func (d *Device) Subscribe(stream gpb.GNMI_SubscribeServer) error {
	if err := d.authorize(stream.Context()); err != nil {
		return err
	}
	if !d.opt.OnChange {
		return status.Error(codes.Unimplemented, "subscriptions are not supported")
	}
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	sl := req.GetSubscribe()
	if sl == nil || sl.GetMode() != gpb.SubscriptionList_STREAM {
		return status.Error(codes.InvalidArgument, "only STREAM subscriptions are supported")
	}
	s := &subscriber{ch: make(chan *gpb.Notification, subscriberQueue)}
	for _, sub := range sl.GetSubscription() {
		if m := sub.GetMode(); m != gpb.SubscriptionMode_ON_CHANGE && m != gpb.SubscriptionMode_TARGET_DEFINED {
			return status.Errorf(codes.InvalidArgument, "subscription mode %v: only ON_CHANGE", m)
		}
		s.paths = append(s.paths, join(sl.GetPrefix(), sub.GetPath()))
	}
	d.mu.Lock()
	cfg := d.running
	s.synced = d.version
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.subs, s)
		d.mu.Unlock()
	}()
	ns, err := ygot.TogNMINotifications(cfg, time.Now().UnixNano(), ygot.GNMINotificationsConfig{UsePathElem: true})
	if err != nil {
		return status.Errorf(codes.Internal, "render configuration: %v", err)
	}
	sync := &gpb.Notification{Timestamp: time.Now().UnixNano()}
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			if s.wants(u.GetPath()) {
				sync.Update = append(sync.Update, u)
			}
		}
	}
	if err := stream.Send(&gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: sync}}); err != nil {
		return err
	}
	if err := stream.Send(&gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_SyncResponse{SyncResponse: true}}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case n, ok := <-s.ch:
			if !ok {
				return status.Error(codes.ResourceExhausted, "subscriber fell behind")
			}
			if err := stream.Send(&gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}}); err != nil {
				return err
			}
		}
	}
}

// wants reports whether p is under one of the subscription's paths.
func (s *subscriber) wants(p *gpb.Path) bool {
	for _, sp := range s.paths {
		if under(sp, p) {
			return true
		}
	}
	return false
}

func under(prefix, p *gpb.Path) bool {
	pe, e := prefix.GetElem(), p.GetElem()
	if len(pe) > len(e) {
		return false
	}
	for i, x := range pe {
		if x.GetName() != e[i].GetName() {
			return false
		}
		for k, v := range x.GetKey() {
			if v != "*" && e[i].GetKey()[k] != v {
				return false
			}
		}
	}
	return true
}

// change is a change of the running configuration to publish.
type change struct {
	old, next *oc.Device
	version   uint64
}

// publisher computes and sends, in order, the notifications of the
// changes setRunningLocked queued, until Close.
func (d *Device) publisher() {
	defer close(d.pubDone)
	for {
		select {
		case <-d.stop:
			return
		case <-d.changesCh:
		}
		d.mu.Lock()
		cs := d.changes
		d.changes = nil
		d.mu.Unlock()
		for _, c := range cs {
			d.publish(c)
		}
	}
}

// publish sends every subscriber that synced before c the difference it
// made.
func (d *Device) publish(c change) {
	diff, err := ygot.Diff(c.old, c.next)
	if err != nil {
		panic(fmt.Sprintf("diff configurations: %v", err)) // generated structs always diff
	}
	diff.Timestamp = time.Now().UnixNano()
	diff.Delete = d.collapse(c.next, diff.GetDelete())
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		if s.overflow || s.synced >= c.version {
			continue
		}
		n := &gpb.Notification{Timestamp: diff.Timestamp}
		for _, u := range diff.GetUpdate() {
			if s.wants(u.GetPath()) {
				n.Update = append(n.Update, u)
			}
		}
		for _, p := range diff.GetDelete() {
			if s.wants(p) {
				n.Delete = append(n.Delete, p)
			}
		}
		if len(n.Update)+len(n.Delete) == 0 {
			continue
		}
		select {
		case s.ch <- n:
		default:
			s.overflow = true
			close(s.ch)
		}
	}
	d.published = time.Now()
}

// Published returns when the device last handed a change's notification
// to its subscribers (benchmarks separate the device's share of a
// detection from the watcher's).
func (d *Device) Published() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.published
}

// collapse reports leaf deletions the way a device does: at the highest
// list entry (or the leaf itself) that no longer exists in next.
func (d *Device) collapse(next *oc.Device, dels []*gpb.Path) []*gpb.Path {
	var out []*gpb.Path
	seen := map[string]bool{}
	for _, p := range dels {
		root := p
		el := p.GetElem()
		for i := range el {
			if len(el[i].GetKey()) == 0 {
				continue
			}
			q := &gpb.Path{Elem: el[:i+1]}
			nodes, err := ytypes.GetNode(d.schema.RootSchema(), next, q)
			if err != nil || len(nodes) == 0 {
				root = q
				break
			}
		}
		k := root.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, root)
		}
	}
	return out
}
