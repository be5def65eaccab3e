// Package templates renders the per-machine files ironcast serves: iPXE
// scripts, pxelinux and GRUB configs, kickstart, preseed, cloud-init and
// Ignition documents, and the templated paths and kernel command lines of
// bootenvs.
//
// An Engine holds the parsed templates by ID; the caller gives it the
// built-in and stored ones (the package never reads the store). Templates
// are Go text/template with the sprig function library
// (github.com/Masterminds/sprig/v3) minus the functions that reach outside
// the process (env, expandenv, getHostByName), and with missingkey=error.
// A template is always rendered into a buffer first, so a failing template
// yields an error and never half a file.
//
// The data a template sees ("the dot") is a *RenderContext. Its exported
// fields and methods are the operator's template API:
//
//	{{.Machine.Name}} {{.Machine.UUID}} {{.Machine.MAC}} {{.Machine.Address}} {{.Machine.Arch}}
//	{{.Machine.MACDashed}} {{.Machine.HexAddress}}
//	{{.Param "ntp-servers"}} {{if .ParamExists "x"}} {{.ParamAsJSON "disks"}}
//	{{.BootEnv.Name}} {{.BootEnv.Kernel}} {{.BootEnv.Initrds}} {{.BootParams}}
//	{{.ProvisionerURL}} {{.ApiURL}} {{.Env.PathFor "http" .BootEnv.Kernel}}
//	{{.GenerateToken}} {{.Firmware}} {{if .Firmware.UEFI}}
//	{{template "other-template-id" .}}
//
// A method that fails (a missing param, a command line with a newline)
// stops the render with an error that names the template, the line and
// column, and the cause.
package templates
