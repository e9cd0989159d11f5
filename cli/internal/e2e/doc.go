// Package e2e holds process-level tests of the laneway binary: it is built
// once (without the race detector) and run as a subprocess against real
// PostgreSQL and Redis: `laneway server` driven by signals (SIGTERM,
// SIGKILL) while a test process, or `laneway example migrate-tiers`, produces
// commands; and `laneway demo`, whose JSON is checked against the issue's
// acceptance. Handling is observed only from outside:
// the customer_summary read model, the outbox table and the Redis streams.
// The operator commands (laneway dlq, laneway outbox) are run the same way,
// as subprocesses whose stdin is a pipe (never a terminal).
//
// The customers domain uses fixed stream names ("customer"), so the tests
// share one Redis database dedicated to this package (DB 11 of REDIS_URL's
// server), flush it at the start of each test and never run in parallel.
package e2e
