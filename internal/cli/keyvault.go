package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// kv is the state one `keyward keyvault …` command shares: the global
// flags and, once resolved, the session.
type kv struct {
	o       IO
	devPath string
	out     printer
	sess    *session
}

// NewKeyvaultCmd is `keyward keyvault`: az keyvault's groups, verbs and
// flags against a Keyward server.
func NewKeyvaultCmd(o IO) *cobra.Command {
	k := &kv{o: o, out: printer{o: o}}
	root := &cobra.Command{
		Use:   "keyvault",
		Short: "Manage vaults, secrets, keys, certificates and role assignments (the az keyvault commands)",
		Long: `Manage vaults, secrets, keys, certificates and role assignments with az keyvault's
groups, verbs, flags and output (docs/CLI.md). Credentials: --dev-json PATH, the
AZURE_* environment variables, or what ` + "`keyward login`" + ` saved.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return k.out.check() },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&k.devPath, "dev-json", "", "a dev server's dev.json (its URLs, CA and service principal); env KEYWARD_DEV_JSON")
	pf.StringVarP(&k.out.format, "output", "o", "json", "output format: json, jsonc, table, tsv, yaml, yamlc, none")
	pf.StringVar(&k.out.query, "query", "", "JMESPath query string (http://jmespath.org)")
	pf.Bool("only-show-errors", false, "accepted for az compatibility (Keyward prints no warnings on stdout)")
	root.AddCommand(k.vaultCommands()...)
	root.AddCommand(k.secretCmd(), k.keyCmd(), k.certificateCmd(), k.roleCmd(), k.backupCmd(), k.restoreCmd())
	strictGroups(root)
	return root
}

func (k *kv) session(ctx context.Context) (*session, error) {
	if k.sess != nil {
		return k.sess, nil
	}
	s, err := resolve(ctx, k.o, k.devPath)
	if err != nil {
		return nil, err
	}
	k.sess = s
	return s, nil
}

// run wraps a command body: resolve the session, call fn, print what it
// returns (nil: nothing, as az prints nothing).
func (k *kv) run(fn func(ctx context.Context, s *session) (any, error), columns ...[2]string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		s, err := k.session(cmd.Context())
		if err != nil {
			return err
		}
		v, err := fn(cmd.Context(), s)
		if err != nil {
			return cleanError(err)
		}
		if v == nil {
			return nil
		}
		return k.out.print(toAny(v), columns)
	}
}

// cleanError shortens the SDK's multi-line response errors to az's one
// line: "(Code) Message".
func cleanError(err error) error {
	msg := err.Error()
	var code, text string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if c, ok := strings.CutPrefix(l, "ERROR CODE: "); ok {
			code = c
		}
		if strings.HasPrefix(l, `"message":`) {
			text = strings.Trim(strings.TrimSpace(strings.TrimPrefix(l, `"message":`)), `",`)
		}
	}
	if code != "" {
		if text == "" {
			text = strings.SplitN(msg, "\n", 2)[0]
		}
		return fmt.Errorf("(%s) %s", code, text)
	}
	return err
}

// object is where one command's object is: --id, or --vault-name with
// --name (and --version).
type object struct {
	vault, name, version, id string
}

func (ob *object) flags(f *pflag.FlagSet, version bool) {
	f.StringVar(&ob.vault, "vault-name", "", "name of the vault")
	f.StringVarP(&ob.name, "name", "n", "", "name of the object")
	f.StringVar(&ob.id, "id", "", "the object's ID (https://{vault}.vault.{suffix}/{kind}/{name}[/{version}]) instead of --vault-name and --name")
	if version {
		f.StringVarP(&ob.version, "version", "v", "", "the version (default: the current one)")
	}
}

// resolve returns the vault URL, name and version.
func (ob *object) resolve(s *session, kind string, needName bool) (vaultURL, name, version string, err error) {
	if ob.id != "" {
		u, err := url.Parse(ob.id)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", "", "", fmt.Errorf("--id %q is not an object ID", ob.id)
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(parts) < 2 || parts[0] != kind || !validName(parts[1]) {
			return "", "", "", fmt.Errorf("--id %q is not a %s ID (https://{vault}/%s/{name}[/{version}])", ob.id, strings.TrimSuffix(kind, "s"), kind)
		}
		if len(parts) > 2 {
			version = parts[2]
		}
		return "https://" + u.Host + "/", parts[1], version, nil
	}
	if ob.vault == "" {
		return "", "", "", errors.New("--vault-name (or --id) is required")
	}
	vaultURL, err = s.vaultURL(ob.vault)
	if err != nil {
		return "", "", "", err
	}
	if needName {
		if ob.name == "" {
			return "", "", "", errors.New("--name (or --id) is required")
		}
		if !validName(ob.name) {
			return "", "", "", fmt.Errorf("--name %q is not valid: 1-127 letters, digits and hyphens", ob.name)
		}
	}
	return vaultURL, ob.name, ob.version, nil
}

func (s *session) secrets(vaultURL string) (*azsecrets.Client, error) {
	return azsecrets.NewClient(vaultURL, s.cred, &azsecrets.ClientOptions{ClientOptions: s.clientOptions()})
}

func (s *session) keys(vaultURL string) (*azkeys.Client, error) {
	return azkeys.NewClient(vaultURL, s.cred, &azkeys.ClientOptions{ClientOptions: s.clientOptions()})
}

func (s *session) certificates(vaultURL string) (*azcertificates.Client, error) {
	return azcertificates.NewClient(vaultURL, s.cred, &azcertificates.ClientOptions{ClientOptions: s.clientOptions()})
}

// parseTags reads az's --tags: space-separated key[=value] pairs.
func parseTags(tags []string) map[string]*string {
	if tags == nil {
		return nil
	}
	out := map[string]*string{}
	for _, t := range tags {
		k, v, _ := strings.Cut(t, "=")
		out[k] = &v
	}
	return out
}

// parseTime reads az's --expires/--not-before: an ISO 8601 UTC time.
func parseTime(flag, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05Z", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, fmt.Errorf("--%s %q is not an ISO 8601 time (e.g. 2030-01-31T00:00:00Z)", flag, s)
}

// writeNew writes a file that must not exist yet (az refuses to
// overwrite a download or backup).
func writeNew(path string, data []byte, mode os.FileMode) error {
	if path == "" {
		return errors.New("--file is required")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("file %s already exists", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func readFile(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("--%s is required", flag)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return raw, nil
}

// jsonArg is az's JSON argument: inline JSON, or @FILE.
func jsonArg(flag, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("--%s is required", flag)
	}
	if path, ok := strings.CutPrefix(v, "@"); ok {
		return readFile(flag, path)
	}
	if _, err := os.Stat(v); err == nil && !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return os.ReadFile(v)
	}
	return []byte(v), nil
}

// progress is a one-line bar on a terminal; nothing when piped.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int
	done  int
}

func (k *kv) progress(label string, total int) *progress {
	return &progress{w: k.o.Stderr, on: k.o.terminal(k.o.Stderr), label: label, total: total}
}

func (p *progress) step(n int) {
	p.done += n
	if !p.on {
		return
	}
	const width = 30
	fill := width
	if p.total > 0 {
		fill = min(width, p.done*width/p.total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("#", fill), strings.Repeat(" ", width-fill), p.done, p.total)
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// multiValued are az's nargs='+' flags: `--ops encrypt decrypt` is one
// flag with two values.
var multiValued = map[string]bool{"--ops": true, "--tags": true, "--ids": true}

// NormalizeArgs rewrites az's space-separated multi-value flags of a
// `keyvault` command line into repeated flags cobra reads
// (`--ops a b` → `--ops a --ops b`); other command lines are unchanged.
func NormalizeArgs(args []string) []string {
	if len(args) == 0 || args[0] != "keyvault" {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if !multiValued[a] || i+1 >= len(args) {
			continue
		}
		i++
		out = append(out, args[i])
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			out = append(out, a, args[i])
		}
	}
	return out
}

// strictGroups makes every command group refuse an unknown subcommand
// (cobra only checks at the root) instead of printing help and exiting 0.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if c.HasSubCommands() && c.RunE == nil && c.Run == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		}
	}
}
