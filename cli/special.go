package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/model"
)

func (a *app) machineParamsCmd() *cobra.Command {
	var aggregate, decode bool
	cmd := &cobra.Command{
		Use:   "params UUID|Name:NAME",
		Short: "Show a machine's params: its own, or with --aggregate every param that applies, with its source",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
			if err != nil {
				return err
			}
			p := a.printer(formatJSON)
			if !aggregate {
				params, err := c.Params(cmd.Context(), key, decode)
				if err != nil {
					return fmt.Errorf("params of machine %s: %w", key, err)
				}
				return p.valueOf("", params)
			}
			params, err := c.AggregateParams(cmd.Context(), key, decode)
			if err != nil {
				return fmt.Errorf("params of machine %s: %w", key, err)
			}
			if p.format != formatTable {
				return p.valueOf("", params)
			}
			rows := make([]json.RawMessage, len(params))
			for i, rp := range params {
				rows[i], err = json.Marshal(map[string]any{"Name": rp.Name, "Value": rp.Value, "Source": rp.Source.String()})
				if err != nil {
					return fmt.Errorf("encode param %s: %w", rp.Name, err)
				}
			}
			return p.table(aggregateColumns, rows)
		},
	}
	cmd.Flags().BoolVar(&aggregate, "aggregate", false, "resolve every param through profiles, bootenv, global profile and defaults")
	cmd.Flags().BoolVar(&decode, "decode", false, "show secure param values in clear (admin and operator)")
	return cmd
}

var aggregateColumns = []column{{"Name", "Name", ""}, {"Value", "Value", ""}, {"Source", "Source", ""}}

func (a *app) machineSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set UUID|Name:NAME param NAME to VALUE",
		Short: "Set one param on a machine; VALUE is JSON (42, true, [\"a\"]) or else a string",
		Example: "  ironcast machines set Name:n1 param ntp-servers to '[\"10.0.0.1\"]'\n" +
			"  ironcast machines set Name:n1 param hostname to web-1",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 5 || args[1] != "param" || args[3] != "to" {
				return usageErrorf("usage: %s", cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
			if err != nil {
				return err
			}
			params, err := c.SetParam(cmd.Context(), key, args[2], parseValue(args[4]))
			if err != nil {
				return fmt.Errorf("set param %s on machine %s: %w", args[2], key, err)
			}
			return a.printer(formatJSON).valueOf("", params)
		},
	}
}

func (a *app) userTokenCmd() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token NAME",
		Short: "Issue a bearer token for a user, using the current credentials",
		Long: `Issue a bearer token for user NAME. Nothing is prompted: with a password
(--password or IRONCAST_PASSWORD) for NAME the server checks it; otherwise the
current token or login is used (an admin may get a token for any user).`,
		Example: "  export IRONCAST_TOKEN=$(ironcast users token admin -o yaml | sed -n 's/^Token: //p')",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cn, err := a.client(cmd)
			if err != nil {
				return err
			}
			name, password := args[0], ""
			if cn.Token == "" && cn.Username == name {
				password = cn.Password
			} else if cn.Token == "" && cn.Username != "" {
				// Log in first: client.Token uses the client's own token
				// when no password is given, and a basic-auth client has
				// none until its first request.
				if _, err := c.Whoami(cmd.Context()); err != nil {
					return fmt.Errorf("log in as %s: %w", cn.Username, err)
				}
			}
			tok, err := c.Token(cmd.Context(), name, password, ttl)
			if err != nil {
				return fmt.Errorf("token for user %s: %w", name, err)
			}
			return a.printer(formatJSON).valueOf("", tok)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, e.g. 1h (default: the server's)")
	return cmd
}

func (a *app) userPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "password NAME",
		Short:   "Set a user's password, read as one line from stdin",
		Example: "  ironcast users password alice < alice.pw",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPasswordLine(a.in)
			if err != nil {
				return err
			}
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			patch, err := json.Marshal(map[string]string{"Password": pw})
			if err != nil {
				return fmt.Errorf("encode password: %w", err)
			}
			if _, err := c.Patch(cmd.Context(), model.KindUsers, args[0], patch, "", ""); err != nil {
				return fmt.Errorf("set password of user %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "Password of user %s changed\n", args[0])
			return err
		},
	}
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

func (a *app) eventsWatchCmd() *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print events as they happen, one JSON object per line, until interrupted",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			events, err := c.Events(ctx, kind)
			if err != nil {
				return fmt.Errorf("watch events: %w", err)
			}
			format := a.format(formatJSON)
			for ev := range events {
				if err := writeEvent(a.out, format, ev); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return nil // interrupted: the normal way to stop watching
			}
			return errors.New("the server closed the event stream")
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only events about this kind of object, e.g. machines")
	return cmd
}

// writeEvent prints one event: a JSON line, a YAML document, or a table
// line (time, type, kind, key).
func writeEvent(w io.Writer, format string, ev model.Event) error {
	var err error
	switch format {
	case formatTable:
		_, err = fmt.Fprintf(w, "%s  %-12s %-12s %s\n", ev.Time.Format(time.RFC3339), ev.Type, ev.Kind, ev.Key)
	case formatYAML:
		if _, err = io.WriteString(w, "---\n"); err == nil {
			err = printer{out: w, format: formatYAML}.valueOf("", ev)
		}
	default:
		var b []byte
		if b, err = json.Marshal(ev); err == nil {
			_, err = w.Write(append(b, '\n'))
		}
	}
	return err
}

func (a *app) backupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Save a consistent snapshot of the server's store to FILE (- for stdout); restore with serve --restore",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			if args[0] == "-" {
				_, err := c.Backup(cmd.Context(), a.out)
				return err
			}
			n, err := backupToFile(cmd.Context(), args[0], c.Backup)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "Wrote %d bytes to %s\n", n, args[0])
			return err
		},
	}
}

// backupToFile runs backup into a 0600 temporary file next to path (a
// backup holds password hashes and sealed secrets) and renames it into
// place only when the whole snapshot arrived.
func backupToFile(ctx context.Context, path string, backup func(context.Context, io.Writer) (int64, error)) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	n, err := backup(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

func (a *app) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the server's version, ports and features",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			info, err := c.Info(cmd.Context())
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			return a.printer(formatJSON).valueOf("", info)
		},
	}
}
