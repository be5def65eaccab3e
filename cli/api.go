package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/model"
)

// client builds an API client from the merged settings (see rootLong for
// the precedence).
func (a *app) client(cmd *cobra.Command) (*client.Client, conn, error) {
	c, err := a.resolveConn(cmd.Flags())
	if err != nil {
		return nil, conn{}, err
	}
	opts := []client.Option{client.WithUserAgent("ironcast-cli/" + version())}
	if c.Insecure != nil && *c.Insecure {
		opts = append(opts, client.WithInsecure())
	} else if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, conn{}, fmt.Errorf("read CA certificate: %w", err)
		}
		opts = append(opts, client.WithCACert(pem))
	}
	switch {
	case c.Token != "":
		opts = append(opts, client.WithToken(c.Token))
	case c.Username != "":
		opts = append(opts, client.WithBasicAuth(c.Username, c.Password))
		noCache, err := a.noTokenCache(cmd.Flags())
		if err != nil {
			return nil, conn{}, err
		}
		if !noCache {
			opts = append(opts, client.WithTokenCache(newFileTokenCache(c.Endpoint, c.Username)))
		}
	}
	cl, err := client.New(c.Endpoint, opts...)
	if err != nil {
		return nil, conn{}, fmt.Errorf("%w (from %s)", err, c.From)
	}
	return cl, c, nil
}

// describe renders err for the one-line message, adding a hint where the
// fix is not obvious from the error itself.
func describe(err error) string {
	var (
		unknownCA *x509.UnknownAuthorityError
		verify    *tls.CertificateVerificationError
		hostname  x509.HostnameError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &verify) || errors.As(err, &hostname) {
		return err.Error() + " (pass --ca-cert with the server's certificate, or --insecure)"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return err.Error() + " (is ironcast serve running there?)"
	}
	return err.Error()
}

func (a *app) addAPICommands(root *cobra.Command) {
	for _, kind := range model.Kinds {
		g := group(kind, "List, show, create, update, patch and destroy "+kind)
		g.Long = g.Short + ".\n\n" + keyDoc(kind)
		g.AddCommand(a.listCmd(kind), a.createCmd(kind))
		keyed := []*cobra.Command{a.showCmd(kind), a.updateCmd(kind), a.patchCmd(kind), a.destroyCmd(kind), a.existsCmd(kind)}
		switch kind {
		case model.KindMachines:
			keyed = append(keyed, a.machineParamsCmd(), a.machineSetCmd())
			keyed = append(keyed, a.machineLifecycleCmds()...)
		case model.KindBootEnvs:
			g.AddCommand(a.bootenvBuildCmd())
		case model.KindUsers:
			keyed = append(keyed, a.userTokenCmd(), a.userPasswordCmd())
		case model.KindPools:
			keyed = append(keyed, a.poolCmds()...)
		}
		for _, c := range keyed {
			c.ValidArgsFunction = a.completeKeys(kind)
		}
		g.AddCommand(keyed...)
		root.AddCommand(g)
	}
	events := group("events", "Watch what happens on the server")
	events.AddCommand(a.eventsWatchCmd())
	root.AddCommand(events, a.backupCmd(), a.infoCmd())
}
