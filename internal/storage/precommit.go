package storage

import "context"

// PreCommitter is consulted by every write transaction whose context was
// made with WithPreCommit, on a backend wrapped by WithPreCommitHooks.
type PreCommitter interface {
	// PreCommit runs after the transaction's function succeeded and before
	// the transaction commits; an error rolls it back and Update returns
	// the error. It may be called more than once (a function may be
	// retried, a request may commit several transactions), so it must be
	// idempotent and cheap after the first call.
	PreCommit() error
}

type preCommitKey struct{}

// WithPreCommit returns a context whose write transactions call
// check.PreCommit before they commit.
//
// The request pipeline uses it to make the audit log fail closed for
// writes (DESIGN.md invariant 3): PreCommit writes the request's audit
// event, so a change is committed only once its event is durable.
func WithPreCommit(ctx context.Context, check PreCommitter) context.Context {
	return context.WithValue(ctx, preCommitKey{}, check)
}

// WithoutPreCommit returns ctx without its PreCommitter: for bookkeeping a
// request does on its own behalf that is not the change it asks for (a
// count of failed authentications), whose commit must not record the
// request's event early as if the request had succeeded. The request's
// event is still written when it ends.
func WithoutPreCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, preCommitKey{}, nil)
}

// WithPreCommitHooks returns b with Update honouring WithPreCommit.
func WithPreCommitHooks(b Backend) Backend { return preCommitBackend{b} }

type preCommitBackend struct{ Backend }

func (b preCommitBackend) Update(ctx context.Context, fn func(Tx) error) error {
	check, ok := ctx.Value(preCommitKey{}).(PreCommitter)
	if !ok {
		return b.Backend.Update(ctx, fn)
	}
	return b.Backend.Update(ctx, func(tx Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return check.PreCommit()
	})
}
