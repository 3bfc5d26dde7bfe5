package server

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/guildhouse-co/kedge/server/kube"
)

// startKube joins the Kubernetes cluster when --kubeconfig or
// --kube-in-cluster says so. The API is not in the data path: an
// unreachable API server is retried in the background, never a start
// failure; a configuration that cannot work (no file, not in a pod) is.
func (d *Daemon) startKube() error {
	var rc *rest.Config
	var err error
	switch {
	case d.cfg.KubeInCluster:
		rc, err = rest.InClusterConfig()
	case d.cfg.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", d.cfg.Kubeconfig)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("load kubernetes config: %w", err)
	}
	c, err := kube.New(d.st, kube.Options{Config: rc, NodeName: d.cfg.NodeName, PostureObject: d.cfg.KubePosture,
		Endpoint: d.cfg.KubeEndpoint, Logger: d.log.With("component", "kube")})
	if err != nil {
		return err
	}
	if err := c.Start(context.Background()); err != nil {
		return err
	}
	d.kube = c
	d.log.Info("kubernetes cluster engine on", "api", rc.Host, "node", d.cfg.NodeName)
	return nil
}
