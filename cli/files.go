package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/api/client"
)

// addFileCommands adds "isos" and "files": uploads into the server's boot
// root, listings and deletes.
func (a *app) addFileCommands(root *cobra.Command) {
	isos := group("isos", "Upload, list and destroy ISO images in the boot root")
	isos.Long = isos.Short + ".\n\nAn uploaded ISO is checked against the sha256 of every bootenv that names it\n" +
		"(IsoFile, IsoSha256) and extracted into BOOTENV/ARCH/ for each of them."
	isos.AddCommand(a.isoUploadCmd(), a.isoListCmd(), a.isoDestroyCmd())
	files := group("files", "Upload, list and destroy files in the boot root")
	files.AddCommand(a.fileUploadCmd(), a.fileListCmd(), a.fileDestroyCmd())
	root.AddCommand(isos, files)
}

func (a *app) isoUploadCmd() *cobra.Command {
	var name, sum string
	cmd := &cobra.Command{
		Use:     "upload FILE",
		Short:   "Upload an ISO image (streamed from disk), check its sha256 and extract it for the bootenvs that use it",
		Example: "  ironcast isos upload ubuntu-24.04.1-live-server-amd64.iso",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				name = filepath.Base(args[0])
			}
			return a.upload(cmd, args[0], func(ctx context.Context, c *client.Client, f *os.File, size int64) (*client.FileResult, error) {
				return c.UploadISO(ctx, name, f, size, sum)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name on the server (default: the file's base name)")
	cmd.Flags().StringVar(&sum, "sha256", "", "expected sha256, overriding the bootenvs'")
	return cmd
}

func (a *app) fileUploadCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "upload LOCAL REMOTEPATH",
		Short:   "Upload a file (streamed from disk) to REMOTEPATH below the boot root, replacing what is there",
		Example: "  ironcast files upload demo-kernel linuxkit/demo-kernel",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.upload(cmd, args[0], func(ctx context.Context, c *client.Client, f *os.File, size int64) (*client.FileResult, error) {
				return c.UploadFile(ctx, args[1], f, size)
			})
		},
	}
}

// upload opens local and hands it to send, then prints what was stored.
func (a *app) upload(cmd *cobra.Command, local string, send func(context.Context, *client.Client, *os.File, int64) (*client.FileResult, error)) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", local)
	}
	c, _, err := a.client(cmd)
	if err != nil {
		return err
	}
	res, err := send(cmd.Context(), c, f, fi.Size())
	if err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	if a.output != "" {
		return a.printer(formatJSON).valueOf("", res)
	}
	fmt.Fprintf(a.out, "Stored %s: %d bytes, sha256 %s\n", res.Path, res.Size, res.Sha256)
	for _, t := range res.Extracted {
		fmt.Fprintf(a.out, "Extracted %d files (%d bytes) into %s\n", t.Files, t.Bytes, t.Dir)
		for _, s := range t.Skipped {
			fmt.Fprintf(a.out, "  skipped %s\n", s)
		}
	}
	return nil
}

func (a *app) isoListCmd() *cobra.Command {
	var sums bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the uploaded ISOs",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListISOs(cmd.Context(), sums)
			if err != nil {
				return err
			}
			return a.printFiles(list, sums)
		},
	}
	cmd.Flags().BoolVar(&sums, "sha256", false, "show each file's sha256 (the server reads every file)")
	return cmd
}

func (a *app) fileListCmd() *cobra.Command {
	var sums bool
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the files in the boot root, or at and below PREFIX",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			list, err := c.ListFiles(cmd.Context(), prefix, sums)
			if err != nil {
				return err
			}
			return a.printFiles(list, sums)
		},
	}
	cmd.Flags().BoolVar(&sums, "sha256", false, "show each file's sha256 (the server reads every file)")
	return cmd
}

// printFiles prints a listing: PATH SIZE [SHA256] lines by default, JSON
// or YAML with -o.
func (a *app) printFiles(list []client.FileEntry, sums bool) error {
	if f := a.format(formatTable); f != formatTable {
		if list == nil {
			list = []client.FileEntry{}
		}
		return a.printer(f).valueOf("", list)
	}
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	hdr := []string{"Path", "Size", "Modified"}
	if sums {
		hdr = append(hdr, "Sha256")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, e := range list {
		row := []string{e.Path, fmt.Sprint(e.Size), e.ModTime.UTC().Format("2006-01-02T15:04:05Z")}
		if sums {
			row = append(row, e.Sha256)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func (a *app) isoDestroyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "destroy NAME",
		Short: "Delete an uploaded ISO (the trees extracted from it stay; see files destroy)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteISO(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("destroy ISO %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "Deleted isos/%s\n", args[0])
			return err
		},
	}
}

func (a *app) fileDestroyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "destroy PATH",
		Short: "Delete a file, or a whole directory tree, from the boot root",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteFile(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("destroy %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.out, "Deleted %s\n", args[0])
			return err
		},
	}
}
