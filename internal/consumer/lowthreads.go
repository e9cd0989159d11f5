package consumer

import "sync"

// Threads of lowered CPU priority (Config.BackfillNice), shared by every
// consumer of the process.
//
// A lowered thread can never be used for anything else (an unprivileged
// process cannot raise its priority back), so the goroutine that lowered
// it stays locked to it. It must not end either: Go then ends the thread,
// and a child process started from that thread with a parent-death signal
// (SysProcAttr.Pdeathsig, which follows the thread, not the process) is
// killed with it. A consumer's backfill workers therefore borrow such
// goroutines from this process-wide pool and hand them back when they stop;
// an idle one waits for the next consumer's worker.

type lowThread struct {
	nice int
	jobs chan lowJob
}

// lowJob is a borrower's work: run on the thread, then, once the thread is
// back in the pool, after (nil: nothing). A borrower that waits for after
// finds the thread free again, so the next borrower reuses it.
type lowJob struct{ run, after func() }

var lowThreads = struct {
	mu   sync.Mutex
	idle map[int][]*lowThread // by the nice increment they run at
}{idle: map[int][]*lowThread{}}

// runLowPriority runs job on a goroutine locked to a thread whose nice
// value is the process's + by, from the pool or new, and after once the
// thread is back in the pool. It returns once job is started, or the error
// that kept a new thread from being lowered (neither is then run).
func runLowPriority(by int, job, after func()) error {
	j := lowJob{run: job, after: after}
	lowThreads.mu.Lock()
	if list := lowThreads.idle[by]; len(list) > 0 {
		t := list[len(list)-1]
		lowThreads.idle[by] = list[:len(list)-1]
		lowThreads.mu.Unlock()
		t.jobs <- j
		return nil
	}
	lowThreads.mu.Unlock()
	t := &lowThread{nice: by, jobs: make(chan lowJob)}
	ready := make(chan error, 1)
	go t.serve(ready)
	if err := <-ready; err != nil {
		return err
	}
	t.jobs <- j
	return nil
}

// serve lowers its thread, then runs jobs for good, going back to the pool
// after each.
func (t *lowThread) serve(ready chan<- error) {
	if err := lowerThreadPriority(t.nice); err != nil {
		ready <- err // the thread is unchanged and unlocked: this goroutine may end
		return
	}
	ready <- nil
	for j := range t.jobs {
		j.run()
		lowThreads.mu.Lock()
		lowThreads.idle[t.nice] = append(lowThreads.idle[t.nice], t)
		lowThreads.mu.Unlock()
		if j.after != nil {
			j.after()
		}
	}
}
