package lanewaystore

import "context"

// backfillKey marks a context whose store calls do backfill work.
type backfillKey struct{}

// AsBackfill marks the store calls made with the returned context as
// backfill work: the relay's claims and marks of rows below the lanes
// threshold, a migration's commits, a backfill handler's transaction. A
// store whose writers wait for one another (one writer at a time, as in
// SQLite) serves the other writers first, so a production command's commit
// or the production relay's claim never queues behind a backfill batch. A
// store whose writers do not wait for one another may ignore it.
func AsBackfill(ctx context.Context) context.Context {
	if IsBackfill(ctx) {
		return ctx
	}
	return context.WithValue(ctx, backfillKey{}, true)
}

// IsBackfill reports whether ctx was marked by AsBackfill.
func IsBackfill(ctx context.Context) bool {
	b, _ := ctx.Value(backfillKey{}).(bool)
	return b
}
