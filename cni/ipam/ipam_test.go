package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNext(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	cases := []struct {
		name  string
		pools []netip.Prefix
		used  []string
		want  string
		err   error
	}{
		{"first after gateway", []netip.Prefix{p("10.9.0.0/24")}, nil, "10.9.0.2", nil},
		{"skips used", []netip.Prefix{p("10.9.0.0/24")}, []string{"10.9.0.2", "10.9.0.3"}, "10.9.0.4", nil},
		{"unmasked pool", []netip.Prefix{p("10.9.0.77/24")}, nil, "10.9.0.2", nil},
		{"next pool when full", []netip.Prefix{p("10.9.0.0/30"), p("10.9.1.0/24")}, []string{"10.9.0.2"}, "10.9.1.2", nil},
		{"no broadcast", []netip.Prefix{p("10.9.0.0/30")}, []string{"10.9.0.2"}, "", ErrExhausted},
		{"tiny pool skipped", []netip.Prefix{p("10.9.0.0/31"), p("10.9.0.8/29")}, nil, "10.9.0.10", nil},
		{"ipv6", []netip.Prefix{p("fd00:9::/120")}, []string{"fd00:9::2"}, "fd00:9::3", nil},
		{"no pools", nil, nil, "", ErrExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			used := map[netip.Addr]bool{}
			for _, u := range c.used {
				used[a(u)] = true
			}
			got, _, err := Next(c.pools, used)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if c.err == nil && got != a(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestGatewayAndHost(t *testing.T) {
	if g := Gateway(netip.MustParsePrefix("10.9.0.0/16")); g.String() != "10.9.0.1" {
		t.Fatalf("gateway %v", g)
	}
	if h := Host(netip.MustParseAddr("fd00::5")); h.String() != "fd00::5/128" {
		t.Fatalf("host %v", h)
	}
}
