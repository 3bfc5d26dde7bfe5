package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun asks the server to validate and admit every object without
	// storing it (server-side dry run).
	DryRun bool
	// FieldManager defaults to "kubetest".
	FieldManager string
}

// Apply server-side applies every object in the YAML files, in order, as
// `kubectl apply --server-side` does. An object whose kind the server does
// not know yet (a custom resource right after its CRD) is retried for a
// while until discovery shows it. It returns the applied objects.
func Apply(ctx context.Context, cfg *rest.Config, o ApplyOptions, files ...string) ([]*unstructured.Unstructured, error) {
	if o.FieldManager == "" {
		o.FieldManager = "kubetest"
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("decode %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			objs = append(objs, &u)
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	opts := metav1.ApplyOptions{FieldManager: o.FieldManager, Force: true}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var applied []*unstructured.Unstructured
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil {
				ri := dyn.Resource(m.Resource)
				var out *unstructured.Unstructured
				if m.Scope.Name() == "namespace" {
					out, err = ri.Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u, opts)
				} else {
					out, err = ri.Apply(ctx, u.GetName(), u, opts)
				}
				if err == nil {
					applied = append(applied, out)
					break
				}
				if !apierrors.IsNotFound(err) { // NotFound: a CRD not yet serving
					return applied, fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
				}
			}
			if time.Now().After(deadline) {
				return applied, fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
			}
			cached.Invalidate()
			mapper.Reset()
			select {
			case <-ctx.Done():
				return applied, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return applied, nil
}
