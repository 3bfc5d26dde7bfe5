package tree

import (
	"fmt"
	"regexp"
)

// pattern is a compiled YANG pattern: a regular expression, or for a few
// patterns that every route and pod carries, a hand-written matcher with
// exactly the same language. A bulk Set of 100,000 routes spent a quarter
// of its time in the regexp backtracker on IPv4 prefixes; FuzzFastPatterns
// checks each hand-written matcher against its regular expression.
type pattern struct {
	text  string
	match func(string) bool
}

// The IPv4 patterns of yang/kedge-types.yang, as goyang concatenates them.
const (
	ipv4Octet       = `([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])`
	ipv4AddressText = `(` + ipv4Octet + `\.){3}` + ipv4Octet
	ipv4PrefixText  = ipv4AddressText + `/([0-9]|[12][0-9]|3[0-2])`
	anchoredPrefix  = "^(?:"
	anchoredSuffix  = ")$"
)

var fastPatterns = map[string]func(string) bool{
	ipv4AddressText: isIPv4Dotted,
	ipv4PrefixText:  isIPv4Prefix,
}

func compilePattern(p string) (pattern, error) {
	text := anchoredPrefix + p + anchoredSuffix
	if fast, ok := fastPatterns[p]; ok {
		return pattern{text: text, match: fast}, nil
	}
	re, err := regexp.Compile(text)
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", p, err)
	}
	return pattern{text: text, match: re.MatchString}, nil
}

// isOctet accepts 0..255 in decimal without leading zeros.
func isOctet(s string) bool {
	switch len(s) {
	case 1:
		return s[0] >= '0' && s[0] <= '9'
	case 2:
		return s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9'
	case 3:
		if s[0] < '1' || s[0] > '2' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
			return false
		}
		return s[0] == '1' || s[1] < '5' || (s[1] == '5' && s[2] <= '5')
	}
	return false
}

// isIPv4Dotted matches ipv4AddressText.
func isIPv4Dotted(s string) bool {
	parts := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isOctet(s[start:i]) {
				return false
			}
			parts++
			start = i + 1
		}
	}
	return parts == 4
}

// isIPv4Prefix matches ipv4PrefixText: a dotted address, '/', and 0..32
// where two-digit lengths start with 1, 2 or 3 (as [12][0-9]|3[0-2]).
func isIPv4Prefix(s string) bool {
	slash := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			slash = i
			break
		}
	}
	if slash < 0 || !isIPv4Dotted(s[:slash]) {
		return false
	}
	l := s[slash+1:]
	switch len(l) {
	case 1:
		return l[0] >= '0' && l[0] <= '9'
	case 2:
		return (l[0] == '1' || l[0] == '2') && l[1] >= '0' && l[1] <= '9' || l[0] == '3' && l[1] >= '0' && l[1] <= '2'
	}
	return false
}
