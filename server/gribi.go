package server

import (
	"context"
	"strconv"
	"time"

	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/gribi"
)

// startGRIBI starts the gRIBI service, which writes /kedge/aft; the routes
// component (when this machine allows the route backend) programs it and
// reports back, so FIB acknowledgements are given only then. It runs
// after the dataplane for that reason, and is registered on both gRPC
// servers beside the gNMI target (newGRPC).
func (d *Daemon) startGRIBI(ctx context.Context, policy *auth.Policy) error {
	d.gribi = gribi.New(gribi.Config{Store: d.st, Auth: auth.Authorizer{Policy: policy},
		Logger: d.log.With("component", "gribi"), Class: d.cfg.GRIBIClass, FIB: d.dp.routesOn,
		// newGRPC gives every gRPC server the gNMI target's codec.
		WireCodec: true})
	if err := d.gribi.Start(ctx, strconv.FormatInt(time.Now().UnixNano(), 36)); err != nil {
		return err
	}
	d.log.Info("gRIBI service", "network_instance", gribi.DefaultNetworkInstance, "class", d.cfg.GRIBIClass,
		"fib_ack", d.dp.routesOn)
	return nil
}
