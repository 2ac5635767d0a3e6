/*
 * threadpool.h -- the process-wide worker pool that the kernels use to run a
 * loop on several cores.
 *
 * One pool of POSIX threads serves the whole process.  It is created lazily,
 * on the first tg_parallel_for() that actually needs a second thread; between
 * calls its workers sleep on a condition variable after spinning for up to
 * 100 us (tg_threadpool_set_spin_us), so an idle pool costs no CPU.  After fork() the
 * child starts with no pool and builds a new one on demand.
 *
 * The whole API is three functions:
 *
 *     static void add_one(int64_t begin, int64_t end, void *ctx) {
 *         float *x = ctx;
 *         for (int64_t i = begin; i < end; ++i) x[i] += 1.0f;
 *     }
 *     ...
 *     tg_parallel_for(n, 4096, add_one, x);   // returns when x[0..n) is done
 *
 * Rules for the function passed to tg_parallel_for():
 *   - it is called with disjoint ranges [begin, end) that together cover
 *     [0, n) exactly once, possibly at the same time on different threads;
 *   - it must not assume which thread runs which range;
 *   - it may call tg_parallel_for() again: the inner call runs inline on the
 *     same thread (no nested parallelism, no deadlock);
 *   - it should not call fork() (the child could not finish the loop);
 *   - a tg_set_num_threads() made meanwhile applies to later loops only.
 */
#ifndef TG_THREADPOOL_H
#define TG_THREADPOOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest thread count accepted by tg_set_num_threads() and the environment. */
#define TG_MAX_THREADS 256

/* The number of threads tg_parallel_for() may use (the caller included).
 * Default, decided on the first call, the first that applies of:
 *   1. TAPEGRAD_NUM_THREADS, if it holds a whole number in [1, TG_MAX_THREADS];
 *   2. OMP_NUM_THREADS, the same (its first number if it is a list), the
 *      variable job schedulers and other libraries already honour;
 *   3. the CPUs this process may use: its affinity mask (taskset, cpusets),
 *      capped by a container's CPU quota (cgroup v2 cpu.max), else the
 *      number of online CPUs;
 * clamped to [1, TG_MAX_THREADS].  Thread-safe; never fails; always >= 1. */
int tg_get_num_threads(void);

/* Which rule of tg_get_num_threads() set the default: "TAPEGRAD_NUM_THREADS",
 * "OMP_NUM_THREADS" or "cpus" (a static string; never NULL).  Reports the
 * default even after tg_set_num_threads(). */
const char *tg_threads_default_source(void);

/* Set the number of threads for later tg_parallel_for() calls.
 * n must be in [1, TG_MAX_THREADS]: returns 0 on success, -1 (and changes
 * nothing) otherwise.  Thread-safe.  The pool grows lazily when needed; it
 * never shrinks (surplus workers just keep sleeping). */
int tg_set_num_threads(int n);

/* The body of a parallel loop: process items [begin, end) with ctx. */
typedef void (*tg_range_fn)(int64_t begin, int64_t end, void *ctx);

/* Chunks per thread that tg_parallel_for() may cut a loop into. */
#define TG_CHUNKS_PER_THREAD 4

/* Run fn(begin, end, ctx) over [0, n), split into at most
 * TG_CHUNKS_PER_THREAD * tg_get_num_threads() contiguous chunks of at least
 * `grain` items each (grain < 1 counts as 1), handed out one at a time to
 * the calling thread and up to tg_get_num_threads() - 1 workers (so a
 * thread on a busy core takes fewer).  The chunk count is floor(n /
 * grain), capped as above: a caller that wants k pieces of work run in
 * parallel makes them the k items of the loop (n = k, grain = 1), since a
 * grain of ceil(n / k) gives floor(n / ceil(n / k)) chunks -- one for
 * n = 49 and k = 2.
 * Returns when every chunk is done.  n <= 0 does nothing.
 * Runs fn(0, n, ctx) inline, on the calling thread, when n <= grain, when
 * the thread count is 1, when called from inside a tg_parallel_for() body
 * (no nested parallelism), when another thread's loop is using the pool, or
 * when no worker thread could be created.  Never fails. */
void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);

/* How long a worker that finished a loop keeps spinning (watching for the
 * next loop, burning its core) before it sleeps, in microseconds: 0 to
 * TG_SPIN_US_MAX.  Default: the TAPEGRAD_SPIN_US variable if it holds a
 * whole number in that range (read on first use), else TG_SPIN_US_DEFAULT.  Waking a sleeping worker
 * takes tens to hundreds of microseconds on a virtual machine, longer than
 * most of a training step's loops, so a worker that sleeps between two of
 * them leaves the next one to the calling thread; see threadpool.c.
 * Returns 0, or -1 (and changes nothing) when us is out of range.
 * Later sleeps only; thread-safe. */
#define TG_SPIN_US_DEFAULT 100
#define TG_SPIN_US_MAX 1000000
int tg_threadpool_set_spin_us(int us);
int tg_threadpool_get_spin_us(void);

/* The number of loops tg_parallel_for() has handed to the workers since
 * the process started (loops run inline are not counted): for tests that
 * a loop is split, and for counting wake-ups per training step. */
uint64_t tg_threadpool_jobs(void);

/* Stop and join every worker thread (e.g. before unloading the library, or
 * to keep leak checkers quiet); a later tg_parallel_for() recreates them.
 * Must not be called from inside a tg_parallel_for() body (it returns
 * without doing anything there). */
void tg_threadpool_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* TG_THREADPOOL_H */
