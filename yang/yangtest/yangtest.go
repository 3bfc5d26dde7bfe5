// Package yangtest opens stores on Kedge's schema for other packages'
// tests, which each had the same lines for it.
package yangtest

import (
	"testing"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/yang"
)

// Store is an empty store on Kedge's schema in a temporary directory,
// closed when the test ends.
func Store(tb testing.TB) *store.Store {
	tb.Helper()
	schema, err := yang.Schema()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(tb.TempDir(), schema, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
