package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/model"
)

// poolCmds are the scaling verbs of `ironcast pools`.
func (a *app) poolCmds() []*cobra.Command {
	return []*cobra.Command{a.poolAllocateCmd(), a.poolReleaseCmd(), a.poolStatusCmd()}
}

func (a *app) poolAllocateCmd() *cobra.Command {
	var (
		req    model.AllocateRequest
		params []string
		ttl    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "allocate NAME",
		Short: "Allocate ready machines from a pool and provision them",
		Long: `Allocate --count ready machines from pool NAME, longest-ready first, and
provision them with --bootenv (default: the pool's BootEnv). Each gets the
pool's profiles and params, then the --param values. All or nothing: when the
pool has fewer ready machines, none is allocated and the error says how many
are ready. With --ttl (default: the pool's AllocationTTL) the reclaim loop
releases the machines when it passes.`,
		Example: "  ironcast pools allocate web --count 3 --owner ci --ttl 2h --param image=v1.4",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Count < 1 {
				return usageErrorf("--count must be at least 1")
			}
			if ttl < 0 || ttl%time.Second != 0 {
				return usageErrorf("--ttl %s is not a whole, non-negative number of seconds", ttl)
			}
			req.TTL = int64(ttl / time.Second)
			for _, kv := range params {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageErrorf("--param %q is not NAME=VALUE", kv)
				}
				if req.Params == nil {
					req.Params = map[string]any{}
				}
				req.Params[k] = parseValue(v)
			}
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			ms, err := c.Allocate(cmd.Context(), args[0], req)
			if err != nil {
				return fmt.Errorf("allocate from pool %s: %w", args[0], err)
			}
			return a.printMachines(ms)
		},
	}
	f := cmd.Flags()
	f.IntVar(&req.Count, "count", 1, "number of machines")
	f.StringVar(&req.BootEnv, "bootenv", "", "bootenv to provision with (default: the pool's)")
	f.StringArrayVar(&params, "param", nil, "set param NAME=VALUE on the machines; VALUE is JSON or else a string (repeatable)")
	f.DurationVar(&ttl, "ttl", 0, "release the machines after this long, e.g. 90m (default: the pool's AllocationTTL)")
	f.StringVar(&req.Owner, "owner", "", "who holds the machines, recorded on the allocation")
	f.BoolVar(&req.Reclaimable, "reclaimable", false, "let the reclaim loop take the machines back early to keep the pool's MinReady")
	return cmd
}

func (a *app) poolReleaseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "release NAME UUID|Name:NAME...",
		Short: "Release machines of a pool: they are wiped and return to ready",
		Long: `Release the named machines of pool NAME: each boots wipe (or, when the pool
has SkipWipe, is ready at once) and loses the profiles and params its
allocation added. Every machine is checked first; if one cannot be released,
none is.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErrorf("%s: want a pool and at least one machine (usage: %s)", subPath(cmd), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			uuids := make([]string, 0, len(args)-1)
			for _, arg := range args[1:] {
				key, err := resolveKey(cmd, c, model.KindMachines, arg)
				if err != nil {
					return err
				}
				uuids = append(uuids, key)
			}
			ms, err := c.ReleaseMachines(cmd.Context(), args[0], uuids)
			if err != nil {
				return fmt.Errorf("release from pool %s: %w", args[0], err)
			}
			return a.printMachines(ms)
		},
	}
}

func (a *app) poolStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Count a pool's machines: by state, ready, returning, allocated, expiring",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			st, err := c.PoolStatus(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("status of pool %s: %w", args[0], err)
			}
			p := a.printer(formatTable)
			if p.format != formatTable {
				return p.valueOf("", st)
			}
			_, err = p.out.Write(poolStatusTable(st))
			return err
		},
	}
}

// printMachines prints machines as the machines table, or -o json/yaml.
func (a *app) printMachines(ms []*model.Machine) error {
	items := make([]json.RawMessage, len(ms))
	for i, m := range ms {
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode machine %s: %w", m.UUID, err)
		}
		items[i] = b
	}
	return a.printer(formatTable).list(model.KindMachines, items)
}

// poolStatusTable renders a pool's status: the totals, then every
// lifecycle state with its count, in lifecycle order.
func poolStatusTable(st *model.PoolStatus) []byte {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	ready := fmt.Sprint(st.Ready)
	if st.MinReady > 0 {
		ready += fmt.Sprintf(" (MinReady %d)", st.MinReady)
	}
	for _, row := range [][2]any{
		{"Pool", st.Pool}, {"Machines", st.Machines}, {"Ready", ready}, {"Returning", st.Returning},
		{"Allocated", st.Allocated}, {"Expiring", st.Expiring}, {"Expired", st.Expired},
	} {
		fmt.Fprintf(tw, "%s\t%v\n", row[0], row[1])
	}
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "State\tMachines")
	for _, s := range model.MachineStates {
		fmt.Fprintf(tw, "%s\t%d\n", s, st.States[s])
	}
	_ = tw.Flush() // a bytes.Buffer does not fail
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		out.WriteString(strings.TrimRight(line, " \n"))
		if strings.HasSuffix(line, "\n") {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
