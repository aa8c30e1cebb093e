package barrier

import "context"

type preCommitKey struct{}

// PreCommitter is consulted by every write transaction of a context made
// with WithPreCommit.
type PreCommitter interface {
	// PreCommit runs after the transaction's function succeeded and before
	// it commits; an error rolls the transaction back and Update returns it.
	PreCommit() error
}

// WithPreCommit returns a context whose write transactions call
// check.PreCommit before they commit.
//
// The request pipeline uses it to make the audit log fail closed for
// writes (DESIGN.md invariant 3): PreCommit writes the request's audit event,
// so a change is committed only once its event is durable. check may be
// called more than once (Update's function may be retried, a request may
// commit several transactions); it must be idempotent and cheap after the
// first call.
func WithPreCommit(ctx context.Context, check PreCommitter) context.Context {
	return context.WithValue(ctx, preCommitKey{}, check)
}

func preCommit(ctx context.Context) error {
	if check, ok := ctx.Value(preCommitKey{}).(PreCommitter); ok {
		return check.PreCommit()
	}
	return nil
}
