package target

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

func subscribe(t *testing.T, e *env, sl *gpb.SubscriptionList) (gpb.GNMI_SubscribeClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sc, err := e.client.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: sl}}); err != nil {
		t.Fatal(err)
	}
	return sc, cancel
}

// untilSync reads responses up to and including the sync response.
func untilSync(t *testing.T, sc gpb.GNMI_SubscribeClient) []*gpb.Notification {
	t.Helper()
	var ns []*gpb.Notification
	for {
		r, err := sc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetSyncResponse() {
			return ns
		}
		ns = append(ns, r.GetUpdate())
	}
}

func nextUpdate(t *testing.T, sc gpb.GNMI_SubscribeClient) *gpb.Notification {
	t.Helper()
	r, err := sc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r.GetUpdate() == nil {
		t.Fatalf("expected a notification, got %v", r)
	}
	return r.GetUpdate()
}

func sorted(s []string) []string { sort.Strings(s); return s }

func TestSubscribeOnceAndPoll(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 4, nil))
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_ONCE, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture")}}})
	if d := cmp.Diff([]string{"/kedge/posture/config/level=4"}, leaves(untilSync(t, sc))); d != "" {
		t.Fatal(d)
	}
	if _, err := sc.Recv(); err == nil {
		t.Fatal("ONCE stream stayed open")
	}

	pc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_POLL, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture/config/level")}}})
	untilSync(t, pc)
	e.mustSet(levelSet(t, 2, nil))
	if err := pc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Poll{Poll: &gpb.Poll{}}}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/kedge/posture/config/level=2"}, leaves(untilSync(t, pc))); d != "" {
		t.Fatal(d)
	}
}

func TestSubscribeStreamOnChange(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config"), Val: jsonIETF(`{"device":"eth0","metric":1}`)}}})
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/routes/route[prefix=*][table=*]/config"), Mode: gpb.SubscriptionMode_ON_CHANGE}}})
	initial := leaves(untilSync(t, sc))
	if len(initial) != 4 {
		t.Fatalf("initial sync %v", initial)
	}
	// One commit touching two routes and the posture: one notification
	// with exactly the subscribed changes and the commit's timestamp.
	resp := e.mustSet(&gpb.SetRequest{
		Delete: []*gpb.Path{gp(t, rt+"/config/metric")},
		Update: []*gpb.Update{
			{Path: gp(t, rt+"/config/device"), Val: sval("eth1")},
			{Path: gp(t, "/kedge/routes/route[prefix=10.9.0.0/16][table=100]/config/device"), Val: sval("eth9")},
			{Path: gp(t, "/kedge/posture/config/level"), Val: uval(3)},
		},
	})
	n := nextUpdate(t, sc)
	want := sorted([]string{
		rt + "/config/device=eth1",
		"del " + rt + "/config/metric",
		"/kedge/routes/route[prefix=10.9.0.0/16][table=100]/config/device=eth9",
		"/kedge/routes/route[prefix=10.9.0.0/16][table=100]/config/prefix=10.9.0.0/16",
		"/kedge/routes/route[prefix=10.9.0.0/16][table=100]/config/table=100",
	})
	if d := cmp.Diff(want, sorted(leaves([]*gpb.Notification{n}))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if n.GetTimestamp() != resp.GetTimestamp() {
		t.Fatalf("notification timestamp %d, commit %d", n.GetTimestamp(), resp.GetTimestamp())
	}
	// Deleting the entry streams its deletes.
	e.mustSet(&gpb.SetRequest{Delete: []*gpb.Path{gp(t, rt)}})
	n = nextUpdate(t, sc)
	if len(n.GetDelete()) != 3 || len(n.GetUpdate()) != 0 {
		t.Fatalf("entry delete: %v", leaves([]*gpb.Notification{n}))
	}
}

func TestSubscribeUpdatesOnlyAndBadRequests(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 4, nil))
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, UpdatesOnly: true, Encoding: gpb.Encoding_JSON_IETF,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture/config/level")}}})
	if got := untilSync(t, sc); len(got) != 0 {
		t.Fatalf("updates_only sent initial data %v", leaves(got))
	}
	e.mustSet(levelSet(t, 3, nil))
	if d := cmp.Diff([]string{"/kedge/posture/config/level=3"}, leaves([]*gpb.Notification{nextUpdate(t, sc)})); d != "" {
		t.Fatal(d)
	}
	for name, sl := range map[string]*gpb.SubscriptionList{
		"unknown path": {Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/nope")}}},
		"tiny sample":  {Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge"), Mode: gpb.SubscriptionMode_SAMPLE, SampleInterval: 10}}},
		"bad encoding": {Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_BYTES},
		"wrong origin": {Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: &gpb.Path{Origin: "cli"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			bad, _ := subscribe(t, e, sl)
			_, err := bad.Recv()
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.Unimplemented {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSubscribeSampleSuppressHeartbeat(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 4, nil))
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture/config/level"), Mode: gpb.SubscriptionMode_SAMPLE,
			SampleInterval: uint64(20 * time.Millisecond), SuppressRedundant: true, HeartbeatInterval: uint64(300 * time.Millisecond)}}})
	untilSync(t, sc)
	// First sample sends the value; later samples are suppressed until the
	// value changes; the heartbeat resends it regardless.
	first := nextUpdate(t, sc)
	if d := cmp.Diff([]string{"/kedge/posture/config/level=4"}, leaves([]*gpb.Notification{first})); d != "" {
		t.Fatal(d)
	}
	e.mustSet(levelSet(t, 2, nil))
	changed := nextUpdate(t, sc)
	if d := cmp.Diff([]string{"/kedge/posture/config/level=2"}, leaves([]*gpb.Notification{changed})); d != "" {
		t.Fatal(d)
	}
	hb := nextUpdate(t, sc)
	if gap := time.Duration(hb.GetTimestamp() - changed.GetTimestamp()); gap < 250*time.Millisecond {
		t.Fatalf("a redundant sample was not suppressed: %v after the change", gap)
	}
	if d := cmp.Diff([]string{"/kedge/posture/config/level=2"}, leaves([]*gpb.Notification{hb})); d != "" {
		t.Fatal(d)
	}
	e.mustSet(&gpb.SetRequest{Delete: []*gpb.Path{gp(t, "/kedge/posture/config/level")}})
	gone := nextUpdate(t, sc)
	if d := cmp.Diff([]string{"del /kedge/posture/config/level"}, leaves([]*gpb.Notification{gone})); d != "" {
		t.Fatal(d)
	}
}

// TestSlowSubscriberNeverBlocksSet: a subscriber that stops reading does
// not slow Set down; when it falls past the feed's backlog its stream
// ends with RESOURCE_EXHAUSTED instead of silently skipping changes.
func TestSlowSubscriberNeverBlocksSet(t *testing.T) {
	e := newEnv(t, t.TempDir(), store.Options{FeedBudget: 200}, allow{})
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/routes")}}})
	untilSync(t, sc)
	// Big commits fill the gRPC flow-control window while nobody reads.
	for i := 0; i < 300; i++ {
		var ups []*gpb.Update
		for j := 0; j < 20; j++ {
			ups = append(ups, &gpb.Update{Path: gp(t, fmt.Sprintf("/kedge/routes/route[prefix=10.%d.%d.0/24][table=254]/config/owner", i/200, j+i%200)), Val: sval(fmt.Sprintf("owner-with-a-fairly-long-name-to-fill-the-window-%03d", i))})
		}
		if _, err := e.set(&gpb.SetRequest{Update: ups}); err != nil {
			t.Fatalf("Set %d blocked or failed behind a slow subscriber: %v", i, err)
		}
	}
	for {
		_, err := sc.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("slow stream ended with %v, want ResourceExhausted", err)
			}
			return
		}
	}
}

// TestManySubscribersSetStorm: 50 STREAM subscribers and concurrent Sets;
// each subscriber sees every commit's value, in commit order.
func TestManySubscribersSetStorm(t *testing.T) { storm(t) }

// TestStormWithoutSharedCodec runs the storm with per-stream encoding.
func TestStormWithoutSharedCodec(t *testing.T) {
	sharedCodecInTests = false
	defer func() { sharedCodecInTests = true }()
	storm(t)
}

func storm(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval("0")}}})
	const subs, sets = 50, 200
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	ready := make(chan struct{}, subs)
	for i := 0; i < subs; i++ {
		sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, UpdatesOnly: true, Encoding: gpb.Encoding_PROTO,
			Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/system/config/cluster")}}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := sc.Recv(); err != nil || !r.GetSyncResponse() {
				errs <- fmt.Errorf("sync: %v %v", r, err)
				return
			}
			ready <- struct{}{}
			next := 1
			for next <= sets {
				r, err := sc.Recv()
				if err != nil {
					errs <- err
					return
				}
				for _, u := range r.GetUpdate().GetUpdate() {
					got, _ := strconv.Atoi(u.GetVal().GetStringVal())
					if got != next {
						errs <- fmt.Errorf("saw %d, want %d", got, next)
						return
					}
					next++
				}
			}
		}()
	}
	for i := 0; i < subs; i++ {
		<-ready
	}
	// Two writers race; the store serialises them, and each subscriber must
	// see the values in the order the commits happened, so writers take
	// turns on a shared counter.
	var mu sync.Mutex
	n := 0
	var ww sync.WaitGroup
	for w := 0; w < 2; w++ {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for {
				mu.Lock()
				if n == sets {
					mu.Unlock()
					return
				}
				n++
				v := n
				_, err := e.set(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval(strconv.Itoa(v))}}})
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ww.Wait()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("subscribers did not receive every change")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
