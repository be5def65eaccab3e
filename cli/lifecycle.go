package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/clientcfg"
	"github.com/ironcast/ironcast/imagebuild"
	"github.com/ironcast/ironcast/model"
)

// machineLifecycleCmds are the machine commands beyond the generic verbs.
func (a *app) machineLifecycleCmds() []*cobra.Command {
	var out []*cobra.Command
	for _, action := range []struct{ name, short string }{
		{"provision", "Provision a ready machine with a bootenv (--bootenv, or its pool's)"},
		{"release", "Release a machine: it boots wipe, erases its disks and returns to ready"},
		{"reboot", "Record a reboot request for a machine"},
	} {
		var bootenv string
		cmd := &cobra.Command{
			Use:   action.name + " UUID|Name:NAME",
			Short: action.short,
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
				if err != nil {
					return err
				}
				raw, err := c.Act(cmd.Context(), key, action.name, client.ActionOptions{BootEnv: bootenv})
				if err != nil {
					return fmt.Errorf("%s machine %s: %w", action.name, key, err)
				}
				return a.printer(formatJSON).value(model.KindMachines, raw)
			},
		}
		if action.name == "provision" {
			cmd.Flags().StringVar(&bootenv, "bootenv", "", "bootenv to provision with (default: the machine's pool's)")
		}
		out = append(out, cmd)
	}
	out = append(out,
		&cobra.Command{
			Use:   "timeline UUID|Name:NAME",
			Short: "Show what happened to a machine: DHCP, files served, renders, transitions",
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
				if err != nil {
					return err
				}
				tl, err := c.Timeline(cmd.Context(), key)
				if err != nil {
					return fmt.Errorf("timeline of machine %s: %w", key, err)
				}
				p := a.printer(formatTable)
				if p.format != formatTable {
					return p.valueOf("", tl)
				}
				return writeTimeline(a.out, tl)
			},
		},
		&cobra.Command{
			Use:   "render UUID|Name:NAME PATH",
			Short: "Show exactly what a machine would be served at PATH (ipxe, pxelinux, grub, preseed.cfg, user-data, ...)",
			Args:  exactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
				if err != nil {
					return err
				}
				b, err := c.Render(cmd.Context(), key, args[1])
				if err != nil {
					return fmt.Errorf("render %s for machine %s: %w", args[1], key, err)
				}
				_, err = a.out.Write(b)
				return err
			},
		},
		&cobra.Command{
			Use:   "explain UUID|Name:NAME",
			Short: "Show every resolved param with its source and the files a machine would be served",
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, key, err := a.clientAndKey(cmd, model.KindMachines, args[0])
				if err != nil {
					return err
				}
				raw, err := c.Explain(cmd.Context(), key)
				if err != nil {
					return fmt.Errorf("explain machine %s: %w", key, err)
				}
				p := a.printer(formatTable)
				if p.format != formatTable {
					return p.valueOf("", raw)
				}
				return a.printExplain(raw)
			},
		},
	)
	return out
}

// writeTimeline prints a timeline for people, one entry per line and
// nothing cut off: local time to the millisecond, the type, and the
// details as key=value, a transition as "from → to (event)" first.
func writeTimeline(w io.Writer, tl []client.TimelineEntry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range tl {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Type, timelineDetails(e.Type, e.Attrs))
	}
	return tw.Flush()
}

// timelineDetails formats an entry's attributes, sorted by key; the
// machine's own MAC is left out of lines that name a path or address.
func timelineDetails(typ string, attrs map[string]any) string {
	var parts []string
	if typ == "transition" {
		t := fmt.Sprintf("%v → %v", attrs["from"], attrs["to"])
		if ev, ok := attrs["event"]; ok {
			t += fmt.Sprintf(" (%v)", ev)
		}
		parts = append(parts, t)
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		switch {
		case typ == "transition" && (k == "from" || k == "to" || k == "event"):
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := attrs[k]
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f)
		}
		s := fmt.Sprint(v)
		if strings.ContainsAny(s, " \t") {
			s = strconv.Quote(s)
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}

// printExplain prints an explanation for people.
func (a *app) printExplain(raw json.RawMessage) error {
	var ex struct {
		Name, UUID, State, BootEnv, Arch string
		Local                            bool
		Params                           []model.ResolvedParam
		Files                            []struct{ Path, Source, Error string }
		Problems                         []string
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		return fmt.Errorf("decode explanation: %w", err)
	}
	w := a.out
	fmt.Fprintf(w, "Machine %s (%s), state %s, arch %s, boots %s", ex.Name, ex.UUID, ex.State, ex.Arch, ex.BootEnv)
	if ex.Local {
		fmt.Fprint(w, " (local disk: DHCP gives no boot file)")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\nParams (first source wins: machine, profiles in order, bootenv, global, default):")
	for _, p := range ex.Params {
		v, _ := json.Marshal(p.Value)
		fmt.Fprintf(w, "  %-28s %-40s from %s\n", p.Name, truncate(string(v), 40), p.Source)
	}
	fmt.Fprintln(w, "\nFiles it would be served:")
	for _, f := range ex.Files {
		line := fmt.Sprintf("  %-48s %s", f.Path, f.Source)
		if f.Error != "" {
			line += "  ERROR: " + f.Error
		}
		fmt.Fprintln(w, line)
	}
	if len(ex.Problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range ex.Problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
	return nil
}

// demoImage is the name "bootenvs build linuxkit-demo" gives its image;
// the files are linuxkit/demo-ARCH-{kernel,initrd.img,cmdline}.
const demoImage = "linuxkit-demo"

// bootenvBuildCmd builds images from Debian packages: the discovery (and
// wipe) image, or a LinuxKit-style demo image for the linuxkit bootenv.
func (a *app) bootenvBuildCmd() *cobra.Command {
	var arch, out, cache string
	cmd := &cobra.Command{
		Use:   "build discovery|linuxkit-demo",
		Short: "Build the discovery (and wipe) image, or a LinuxKit-style demo image, from Debian packages into the boot root",
		Long: `Build an image's kernel and initramfs from a Debian linux-image package and
busybox-static for --arch, fetched with apt-get download (no other
downloads), into the boot root. OUT defaults to the boot root of the local
server's data dir. The build is reproducible: the same packages give
byte-identical files (see the SHA256SUMS written next to them).

  discovery      OUT/discovery/ARCH/{vmlinuz,initrd.img}: what unknown
                 machines boot to register, and what the wipe bootenv runs.
  linuxkit-demo  OUT/linuxkit/demo-ARCH-{kernel,initrd.img,cmdline}: an
                 immutable image in LinuxKit's kernel+initrd form for the
                 linuxkit bootenv. It brings up the network, reads its
                 metadata from ironcast, prints the machine's param
                 demo-message on the console (ironcast.param in its
                 cmdline file), posts its "running" callback and stays up.`,
		Example: `  ironcast bootenvs build discovery
  ironcast bootenvs build linuxkit-demo
  ironcast machines set UUID param linuxkit-image to demo-amd64
  ironcast machines set UUID param linuxkit-cmdline to "$(cat DATA/boot/linuxkit/demo-amd64-cmdline)"
  ironcast machines set UUID param demo-message to "hello from ironcast"
  ironcast machines provision UUID --bootenv linuxkit`,
		Args:      exactArgs(1),
		ValidArgs: []string{model.BootEnvDiscovery, demoImage},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := imagebuild.Options{Arch: arch, OutDir: out, CacheDir: cache}
			switch args[0] {
			case model.BootEnvDiscovery:
			case demoImage:
				opts.Mode, opts.Name = imagebuild.ModeTest, "demo-"+arch
				opts.Cmdline = "ironcast.param=demo-message"
			default:
				return usageErrorf("unknown image %q: want discovery or %s", args[0], demoImage)
			}
			if opts.OutDir == "" {
				opts.OutDir = a.defaultBootRoot()
			}
			res, err := imagebuild.Build(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("build %s for %s: %w", args[0], arch, err)
			}
			fmt.Fprintf(a.out, "built %s and %s\n", res.Kernel, res.Initrd)
			if res.Cmdline != "" {
				fmt.Fprintf(a.out, "cmdline in %s; boot it with the params linuxkit-image=%s and linuxkit-cmdline=<that file's contents>\n", res.Cmdline, opts.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&arch, "arch", model.ArchAMD64, "architecture: amd64 or arm64")
	cmd.Flags().StringVar(&out, "out", "", "boot root to write into (default: DATA/boot of the local server, else ./boot)")
	cmd.Flags().StringVar(&cache, "cache-dir", "", "where downloaded packages are kept (default: the user cache dir)")
	return cmd
}

// defaultBootRoot is the boot root of the server this machine runs, found
// through the local-server file, else ./boot.
func (a *app) defaultBootRoot() string {
	if ls, err := clientcfg.Read(); err == nil && ls.PasswordFile != "" {
		return filepath.Join(filepath.Dir(ls.PasswordFile), "boot")
	}
	if wd, err := os.Getwd(); err == nil {
		return filepath.Join(wd, "boot")
	}
	return "boot"
}
