package main

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"
)

// TestAnalyzer runs the check on planted violations (testdata's walker
// package, every one marked with the diagnostic it must get), on code it
// must leave alone (names from data, test files), and on packages it
// exempts (gnmi/tree itself, gen/).
func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), Analyzer,
		"example.com/walker",
		"github.com/guildhouse-co/kedge/gnmi/tree",
		"github.com/guildhouse-co/kedge/gen/kedgetree")
}
