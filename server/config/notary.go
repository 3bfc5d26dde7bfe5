package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
)

func bindNotary(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Notary, "notary", c.Notary, "on: record artifacts in the notary log (<data-dir>/notary); off: none")
	fs.StringVar(&c.Quartermaster, "quartermaster", c.Quartermaster, "host:port of the Quartermaster receiver the notary ships its log to (empty: not shipped); kept reachable at level 1")
	fs.StringVar(&c.QuartermasterCA, "quartermaster-ca", c.QuartermasterCA, "CA bundle (PEM) that signed Quartermaster's certificate (default: the system roots)")
	fs.StringVar(&c.QuartermasterCert, "quartermaster-cert", c.QuartermasterCert, "client certificate (PEM) for Quartermaster's mTLS")
	fs.StringVar(&c.QuartermasterKey, "quartermaster-key", c.QuartermasterKey, "client private key (PEM) for Quartermaster's mTLS")
	fs.BoolVar(&c.QuartermasterInsecure, "quartermaster-insecure", c.QuartermasterInsecure, "ship to Quartermaster in plaintext (tests and labs)")
}

// resolveNotary checks the notary settings.
func (c *Config) resolveNotary() error {
	if c.Notary != "on" && c.Notary != "off" {
		return fmt.Errorf("resolve config: --notary %q: want on or off", c.Notary)
	}
	if c.Quartermaster == "" {
		if c.QuartermasterCA != "" || c.QuartermasterCert != "" || c.QuartermasterKey != "" || c.QuartermasterInsecure {
			return errors.New("resolve config: --quartermaster-* settings without --quartermaster")
		}
		return nil
	}
	if c.Notary == "off" {
		return errors.New("resolve config: --quartermaster with --notary off: there is no log to ship")
	}
	if _, _, err := net.SplitHostPort(c.Quartermaster); err != nil {
		return fmt.Errorf("resolve config: --quartermaster %q: want host:port: %w", c.Quartermaster, err)
	}
	if (c.QuartermasterCert == "") != (c.QuartermasterKey == "") {
		return errors.New("resolve config: --quartermaster-cert and --quartermaster-key go together")
	}
	if c.QuartermasterInsecure && (c.QuartermasterCA != "" || c.QuartermasterCert != "") {
		return errors.New("resolve config: --quartermaster-insecure conflicts with --quartermaster-ca/-cert/-key")
	}
	return nil
}
