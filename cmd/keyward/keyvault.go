package main

import (
	"io"
	"os"

	kwcli "github.com/keyward/keyward/internal/cli"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// clientCommands are the az-shaped client commands (internal/cli):
// keyvault, login, logout.
func clientCommands(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) []*cobra.Command {
	o := kwcli.IO{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr, Terminal: func(w io.Writer) bool {
		f, ok := w.(*os.File)
		return ok && term.IsTerminal(int(f.Fd()))
	}}
	return []*cobra.Command{kwcli.NewKeyvaultCmd(o), kwcli.NewLoginCmd(o), kwcli.NewLogoutCmd(o)}
}
