package kube

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// gatePoll is how often a waiting list or watch asks whether the API
// server is back.
const gatePoll = 250 * time.Millisecond

// gatedLW makes an informer wait for the API server instead of failing
// against it. A reflector retries a failed list or watch with exponential
// backoff (0.8 s doubling to 30 s, jittered up to twice that), so after an
// outage of half a minute an informer could stay blind for most of a
// minute after the API returned. Waiting here (a cheap /readyz every
// 250 ms) keeps the reflector's backoff at its first step, and the node
// resyncs within about a poll of the API's return.
type gatedLW struct {
	lw    cache.ListerWatcherWithContext
	ready func(ctx context.Context) error
}

func gated(lw cache.ListerWatcher, core rest.Interface) cache.ListerWatcher {
	return &gatedLW{lw: cache.ToListerWatcherWithContext(lw), ready: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return core.Get().AbsPath("/readyz").Do(ctx).Error()
	}}
}

// wait returns once the API answers /readyz, or when ctx ends (the list
// or watch that follows then fails as it would have).
func (g *gatedLW) wait(ctx context.Context) {
	if g.ready(ctx) == nil {
		return
	}
	t := time.NewTicker(gatePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if g.ready(ctx) == nil {
				return
			}
		}
	}
}

func (g *gatedLW) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	g.wait(ctx)
	return g.lw.ListWithContext(ctx, o)
}

func (g *gatedLW) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	g.wait(ctx)
	return g.lw.WatchWithContext(ctx, o)
}

// List and Watch serve callers without a context (none in client-go's
// reflector today).
func (g *gatedLW) List(o metav1.ListOptions) (runtime.Object, error) {
	return g.ListWithContext(context.Background(), o)
}

func (g *gatedLW) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return g.WatchWithContext(context.Background(), o)
}
