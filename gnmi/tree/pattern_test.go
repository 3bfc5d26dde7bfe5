package tree

import (
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"testing"
)

// TestFastPatternsAgreeWithRegexp compares the hand-written matchers with
// their regular expressions on random strings over the interesting
// alphabet (the fuzz target explores further).
func TestFastPatternsAgreeWithRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789./3952"
	for text, fast := range fastPatterns {
		re := regexp.MustCompile(anchoredPrefix + text + anchoredSuffix)
		for i := 0; i < 200000; i++ {
			b := make([]byte, rng.IntN(20))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(b)
			if fast(s) != re.MatchString(s) {
				t.Fatalf("%q: fast %v, regexp %v", s, fast(s), re.MatchString(s))
			}
		}
	}
}

// TestKedgeIPv4TypesUseFastPatterns: the real modules' IPv4 typedefs hit
// the fast path (a changed pattern would silently fall back to regexp).
func TestKedgeIPv4TypesUseFastPatterns(t *testing.T) {
	dir := filepath.Join("..", "..", "yang")
	s, err := LoadModules([]string{dir}, []string{filepath.Join(dir, "kedge.yang"), filepath.Join(dir, "kedge-types.yang")}, []string{"kedge"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/kedge/routes/route/config/prefix", "/kedge/routes/route/config/next-hop"} {
		n := s.Find(p)
		if n == nil {
			t.Fatalf("%s missing", p)
		}
		v4 := n.Type.base().Members[0]
		if len(v4.patterns) != 1 {
			t.Fatalf("%s: %d patterns", p, len(v4.patterns))
		}
		if _, fast := fastPatterns[v4.patterns[0].text[len(anchoredPrefix):len(v4.patterns[0].text)-len(anchoredSuffix)]]; !fast {
			t.Fatalf("%s: IPv4 member pattern is not on the fast path: %s", p, v4.patterns[0].text)
		}
	}
}
