// Command httpbench runs ironcast's HTTP boot server (httpboot over a
// bootfs.Source) on a loopback address for test/bench/http/run.sh: real
// files from -root, and per-machine iPXE scripts at /<mac>.ipxe rendered
// through the template engine for -machines synthetic machines, the way
// the daemon renders them (machine lookup by MAC, params resolved through
// model.ParamLayers, templated kernel, initrds and command line).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/httpboot"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/templates"
)

// ipxeScript is a discovery-style per-machine script.
const ipxeScript = `#!ipxe
# {{.Machine.Name}} ({{.Machine.UUID}}) boots {{.BootEnv.Name}}
set base-url {{.ProvisionerURL}}
{{if .ParamExists "ipxe-debug"}}set debug {{.Param "ipxe-debug"}}
{{end}}echo ironcast: {{.Machine.MAC}} on ${net0/chip} firmware {{.Firmware}}
kernel {{.Env.PathFor "http" .BootEnv.Kernel}} {{range .BootEnv.InitrdNames}}initrd={{.}} {{end}}{{.BootParams}}
{{range .BootEnv.Initrds}}initrd {{$.Env.PathFor "http" .}}
{{end}}boot || goto failed
:failed
echo boot failed, retrying in 10s
sleep 10
chain {{.ProvisionerURL}}/{{.Machine.MAC}}.ipxe
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	root := flag.String("root", "", "boot root with real files")
	n := flag.Int("machines", 1000, "synthetic machines 52:54:00:00:XX:YY with rendered /<mac>.ipxe")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	eng := templates.NewEngine()
	if err := eng.Set("ipxe-discovery", ipxeScript); err != nil {
		return err
	}
	env := &model.BootEnv{
		Name:       model.BootEnvDiscovery,
		BootParams: `console={{.Param "console"}} ironcast.api={{.ApiURL}} ironcast.token={{.GenerateToken}}`,
		Arches: map[string]model.ArchInfo{
			model.ArchAMD64: {
				Kernel:     "discovery/{{.Machine.Arch}}/vmlinuz",
				Initrds:    []string{"discovery/amd64/initrd.img", "discovery/amd64/modules.cpio"},
				BootParams: "rootfstype=ramfs quiet",
			},
		},
	}
	global := &model.Profile{Name: model.GlobalProfile, Params: map[string]any{"console": "ttyS0,115200n8"}}
	machines := make(map[string]*model.Machine, *n)
	for i := 0; i < *n; i++ {
		mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
		m := &model.Machine{
			UUID:          fmt.Sprintf("00000000-0000-4000-8000-%012x", i),
			HardwareAddrs: []string{mac},
			Address:       fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff),
			BootEnv:       env.Name,
			Params:        map[string]any{"machine-index": i},
		}
		m.Normalize()
		machines[mac] = m
	}
	renderer := bootfs.RendererFunc(func(ctx context.Context, req model.FileRequest) ([]byte, bool, error) {
		mac, ok := strings.CutSuffix(req.Path, ".ipxe")
		if !ok || strings.Contains(mac, "/") {
			return nil, false, nil
		}
		m := machines[mac]
		if m == nil {
			return nil, false, nil
		}
		layers := model.ParamLayers{Machine: m, BootEnv: env, Global: global}
		rc := &templates.RenderContext{
			Machine:    templates.MachineFrom(m, mac),
			BootEnv:    templates.BootEnv{BootEnv: env},
			Firmware:   model.FirmwareBIOS,
			ServerAddr: req.Local.Addr(),
			HTTPPort:   int(req.Local.Port()),
			Resolve: func(name string) (any, bool) {
				r, ok := layers.Resolve(name)
				return r.Value, ok
			},
			Token: func() (string, error) { return "bench-token-" + m.UUID, nil },
		}
		b, err := eng.Render("ipxe-discovery", rc)
		return b, true, err
	})
	src, err := bootfs.New(bootfs.Config{Root: *root, Renderer: renderer})
	if err != nil {
		return err
	}
	defer src.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Printf("listening %s\n", ln.Addr())
	err = httpboot.New(httpboot.Config{Source: src, Logger: log}).Serve(ctx, ln)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
