package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/storage/bolt"
	"github.com/keyward/keyward/internal/storage/migrate"
	"github.com/keyward/keyward/internal/storage/postgres"
)

// newMigrateCmd is `keyward operator migrate-storage`: copy a stopped
// single-node bbolt store into PostgreSQL, sealed values as they are.
func newMigrateCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	var from, dsnFlag string
	var batch int
	cmd := &cobra.Command{
		Use:   "migrate-storage",
		Short: "Copy a bbolt data file into PostgreSQL (offline; resumable; verified)",
		Long: `Copy a stopped Keyward's bbolt file into a PostgreSQL database.

Values are copied exactly as stored (sealed): no unseal key is needed and
nothing is re-encrypted. The copy is resumable: run it again after an
interruption and it continues after the last key already copied. At the end
it compares key counts and a SHA-256 over every key and value of both
stores. Stop the server first (the bbolt file is locked while it runs).

The DSN is read from KEYWARD_TARGET_DSN (preferred: keeps the password out
of the process list) or --to-dsn.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn := cmp.Or(getenv("KEYWARD_TARGET_DSN"), dsnFlag)
			if from == "" || dsn == "" {
				return errors.New("need --from (the bbolt file) and a target DSN (KEYWARD_TARGET_DSN or --to-dsn)")
			}
			ctx := cmd.Context()
			src, err := bolt.Open(from, bolt.Options{Timeout: 2 * time.Second})
			if err != nil {
				return fmt.Errorf("opening the source (is the server still running?): %w", err)
			}
			defer src.Close()
			dst, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
			if err != nil {
				return err
			}
			defer dst.Close()
			n, err := migrate.Copy(ctx, src, dst, migrate.Options{BatchSize: batch, Progress: func(copied int, _ string) {
				fmt.Fprintf(stdout, "\rcopied %d keys", copied)
			}})
			if n > 0 {
				fmt.Fprintln(stdout)
			}
			if err != nil {
				return err
			}
			s, d, err := migrate.Verify(ctx, src, dst)
			if err != nil {
				return fmt.Errorf("verification failed: source %d keys %x, target %d keys %x: %w", s.Keys, s.Checksum[:8], d.Keys, d.Checksum[:8], err)
			}
			fmt.Fprintf(stdout, "Copied %d keys in this run; verified %d keys (%d bytes), checksum %x.\n", n, d.Keys, d.Bytes, d.Checksum)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the bbolt file to copy (DATA/keyward.db)")
	cmd.Flags().StringVar(&dsnFlag, "to-dsn", "", "target PostgreSQL DSN (prefer env KEYWARD_TARGET_DSN)")
	cmd.Flags().IntVar(&batch, "batch", 500, "keys per transaction")
	return cmd
}
