/*
 * threadpool.c -- one lazily created pool of POSIX threads for the process.
 *
 * How a parallel loop runs
 * ------------------------
 * The pool has W sleeping workers and one "job" slot.  tg_parallel_for():
 *
 *   1. cuts [0, n) into C balanced contiguous chunks of at least `grain`
 *      items, C <= TG_CHUNKS_PER_THREAD per thread;
 *   2. publishes the job (fn, ctx, chunk count, an atomic "next chunk"
 *      counter), bumps the pool's generation number and wakes the workers
 *      that sleep (a spinning one sees the new generation by itself);
 *   3. takes chunks itself, like a worker, until none are left;
 *   4. withdraws the job (so that a worker waking up only now does not
 *      join it) and waits for the workers that did join to finish.
 *
 * Chunks are handed out with an atomic counter, not assigned by thread
 * number: if a worker wakes up late, the others simply take its chunk, so a
 * slow wake-up never leaves the loop waiting on work nobody has started,
 * and a small loop that the caller finished alone returns at once, without
 * waiting for sleeping workers to wake up (on a virtual machine a wake-up
 * can take hundreds of microseconds).
 *
 * Handing a loop over
 * -------------------
 * Steps 2 and 4 take no lock: the job pointer, the generation, the count
 * of workers that joined (`active`) and the sleepers' flags are
 * sequentially consistent atomics.  A worker that sees a new generation
 * first joins (active + 1), then reads the job; the caller first withdraws
 * the job (NULL), then waits for active to reach 0.  In the single order
 * of those four operations either the caller sees the worker's join and
 * waits for it, or the worker sees no job (or a later one, as much alive)
 * and leaves.  The pool's mutex is taken only to sleep on, or to wake, a
 * condition variable: a worker going to sleep counts itself in `sleepers`
 * before it looks at the generation a last time, and the caller, after
 * bumping the generation, broadcasts only if that count is not 0 (the
 * same rule for a caller sleeping while it waits for the workers).  Until
 * session 10 steps 2 and 4 each took the mutex on both sides, twice per
 * loop per thread; on two threads the caller and the worker met on it at
 * the start and end of nearly every loop, and a thread that found it taken
 * slept in the kernel (a futex wait, and a wake-up of microseconds to tens
 * of microseconds on a virtual machine) while the loop waited.
 *
 * Store, then load
 * ----------------
 * Twice the caller stores a flag and then loads the workers' count, while
 * a worker changes the count and then loads the flag: the withdrawal of
 * the job before the wait for `active`, and `caller_sleeping` before the
 * check that a worker is still active.  Sequential consistency forbids
 * both loads reading the old values; a plain seq_cst store would do in
 * C11, but the two stores are exchanges (read-modify-write) because of an
 * emulator.  On aarch64 a seq_cst store and load are STLR and LDAR, which
 * the architecture keeps in order.  qemu-user emulating aarch64 on an
 * x86-64 host (.ci/arm64.sh) did not (as we read its translation, the
 * fences come before the store-release and after the load-acquire, not
 * between them, and the host's store buffer lets the load pass the
 * store): the threadpool suite hung in 17 of 824 runs (the clean
 * CI of session 10's code timed out on it), and the memory of a hung
 * process showed caller_sleeping = 1, active = 0, the caller asleep on
 * done_cv and the last worker asleep on wake_cv: it had left without
 * seeing the flag.  An exchange is a locked instruction on the x86 host,
 * a full barrier (natively on x86-64 gcc already compiles a seq_cst
 * store as the same XCHG, so nothing changes there): 0 hangs in 1,400
 * runs since.  .ci/arm64.sh runs the threadpool suite 30 more times
 * under qemu to catch this kind of race.
 *
 * Sleeping and waking
 * -------------------
 * A worker that finished a job spins, watching the generation number, for
 * up to tg_threadpool_get_spin_us() microseconds (default 100, or
 * TAPEGRAD_SPIN_US; looking at the clock every TG_SPIN_CHECK pauses), then sleeps on a condition
 * variable; so an idle pool uses no CPU a moment after its last loop.  The
 * calling thread waiting for the workers' last chunks spins as long before
 * it sleeps.  Why 100 us: waking a sleeping worker takes tens to hundreds
 * of microseconds on a virtual machine, and most loops of a training step
 * are shorter than that (the MNIST CNN's ReLUs and poolings take 30-230 us
 * on one thread; the Python between two of them, 5-50 us).  With the old
 * spin of about 2 us the worker slept between nearly every two of the
 * step's 17 loops, and the calling thread ran most of each short loop
 * alone before it woke.  Measured on the CNN's batch-32 step, 1 and 2
 * threads and the spins interleaved in one process, 30 rounds run only
 * while other processes used under 0.3 of a core (best of 3 steps each),
 * the 2-thread speed-up over 1 thread was, best and median round:
 * spin 2 us 1.70x / 1.45x, 30 us 1.82x / 1.51x, 100 us 1.86x / 1.56x,
 * 300 us 1.86x / 1.53x (a first run of 15 rounds: 2 us 1.72x / 1.68x,
 * 50 us 1.88x / 1.78x, 200 us 1.91x / 1.74x, 1000 us 1.90x / 1.79x).
 * Longer spins gain nothing more; they only burn a core longer after the
 * last loop (OpenMP runtimes spin for far longer: 200 ms by default in
 * Intel's).  A shared machine can set it to 0 (TAPEGRAD_SPIN_US=0, or
 * tg_threadpool_set_spin_us).
 *
 * Serialisation
 * -------------
 * The pool runs one job at a time.  A second application thread that calls
 * tg_parallel_for() while the pool is busy does not wait: it runs its loop
 * inline on its own thread (tg_mutex_trylock).  A call made from inside
 * a loop body (a worker, or the caller while it runs chunks) also runs
 * inline: nested parallelism would only oversubscribe the cores, and waiting
 * for the pool from inside the pool would deadlock.
 *
 * fork()
 * ------
 * Only the thread that calls fork() exists in the child.  pthread_atfork()
 * handlers take the pool's locks around fork() (holding `submit`, no loop
 * is in flight)
 * and, in the child, forget the parent's workers: the child's pool is empty
 * and is rebuilt by its first tg_parallel_for().
 */
#include "threadpool.h"

#include "compiler.h"
#include "platform.h"
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sched.h>
#include <unistd.h>
#endif

/* Pause instructions between two looks at the clock while spinning.  A
 * pause takes 10-140 cycles depending on the CPU (about 30-55 ns on the
 * machines we tuned on), so 64 of them are a few microseconds: the spin
 * reads the clock (a vDSO call, ~20 ns) rarely enough to cost nothing. */
#define TG_SPIN_CHECK 64

/* How long a worker that finished a job spins, watching for the next one,
 * before it sleeps (nanoseconds; tg_threadpool_set_spin_us); -1 until the
 * default (TAPEGRAD_SPIN_US or TG_SPIN_US_DEFAULT) is decided. */
static atomic_llong spin_ns = -1;

/* TAPEGRAD_SPIN_US if it holds a whole number in [0, TG_SPIN_US_MAX], else
 * TG_SPIN_US_DEFAULT; in nanoseconds. */
static long long default_spin_ns(void)
{
    const char *s = getenv("TAPEGRAD_SPIN_US");
    long long v = 0;
    if (s == NULL || *s == '\0')
        return TG_SPIN_US_DEFAULT * 1000LL;
    for (const char *p = s; *p; ++p) {
        if (*p < '0' || *p > '9')
            return TG_SPIN_US_DEFAULT * 1000LL;
        v = v * 10 + (*p - '0');
        if (v > TG_SPIN_US_MAX)
            return TG_SPIN_US_DEFAULT * 1000LL;
    }
    return v * 1000LL;
}

/* The spin in nanoseconds, deciding the default on first use. */
static long long get_spin_ns(void)
{
    long long n = atomic_load_explicit(&spin_ns, memory_order_relaxed);
    if (n < 0) {
        long long expected = -1, def = default_spin_ns();
        n = atomic_compare_exchange_strong(&spin_ns, &expected, def) ? def : expected;
    }
    return n;
}

/* One parallel loop in flight.  Lives on the stack of the tg_parallel_for()
 * call that owns it; a worker touches it only between joining (active + 1,
 * before it reads pool.job) and leaving (active - 1), and the call returns
 * only after active is back to 0. */
typedef struct {
    tg_range_fn fn;
    void *ctx;
    int64_t n;              /* items [0, n) */
    int64_t nchunks;        /* balanced contiguous chunks */
    int helpers;            /* workers 0..helpers-1 may take chunks */
    atomic_llong next;      /* next chunk to hand out */
} tg_job;

/* The pool.  A loop is handed over without the lock (see "Handing a loop
 * over" above): `job`, `helpers`, `generation`, `active`, the `sleepers`
 * count and the `caller_sleeping` flag are sequentially consistent atomics;
 * `lock` serves the sleeping on the two condition variables and guards
 * `spawn_generation`; `submit` (held by the caller of the loop in flight,
 * and by pool_grow/pool_stop) guards the thread array. */
static struct {
    tg_mutex submit;     /* held by the thread whose job owns the pool */
    tg_mutex lock;
    tg_cond wake_cv;     /* workers sleep here waiting for a job */
    tg_cond done_cv;     /* the submitter sleeps here waiting for workers */
    tg_thread *threads;         /* nworkers worker threads */
    int nworkers;
    unsigned spawn_generation;  /* generation when the current workers were made */
    atomic_uint generation;     /* bumped once per published job */
    atomic_int active;          /* workers between joining a generation and leaving it */
    atomic_int sleepers;        /* workers asleep (or about to be) on wake_cv */
    atomic_int caller_sleeping; /* the submitter sleeps (or is about to) on done_cv */
    atomic_int helpers;         /* workers 0..helpers-1 may help with the loop in flight */
    atomic_int shutdown;        /* workers exit when they see this */
    _Atomic(tg_job *) job;      /* the loop in flight, NULL between loops */
} pool = {
    .submit = TG_MUTEX_INIT,
    .lock = TG_MUTEX_INIT,
    .wake_cv = TG_COND_INIT,
    .done_cv = TG_COND_INIT,
};

/* Loops handed to the workers (tg_threadpool_jobs). */
static atomic_ullong jobs_published;

/* Requested thread count; 0 until the default is computed. */
static atomic_int requested_threads;

/* Nonzero while this thread runs a chunk of some loop (or is a worker):
 * tg_parallel_for() then runs inline. */
static TG_THREAD_LOCAL int tls_in_parallel;

/* Whether this thread's atfork prepare handler took the pool locks. */
#ifndef _WIN32
static TG_THREAD_LOCAL int tls_fork_locked;
#endif

/* ---------------------------------------------------------------- threads */

/* Parse a thread count from the environment variable `name`: returns the
 * value in [1, TG_MAX_THREADS], or 0 if the variable is unset, empty, not a
 * whole number or out of range.  For OMP_NUM_THREADS, whose value may be a
 * list for nested levels ("4,2"), the first number counts. */
static int env_threads(const char *name, int allow_list)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    long v = 0;
    for (const char *p = s; *p; ++p) {
        if (allow_list && *p == ',' && p != s)
            break;
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
        if (v > TG_MAX_THREADS)
            return 0;
    }
    return v >= 1 ? (int)v : 0;
}

/* The CPUs this process may actually use: the affinity mask (taskset,
 * cpusets, a job scheduler's pinning) and, in a container, the CFS quota of
 * its cgroup (docker --cpus=1.5 gives 2).  0 when unknown. */
static int usable_cpus(void)
{
    int n = 0;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    /* cgroup v2: "max 100000" or "<quota> <period>" */
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        long quota = 0, period = 0;
        char word[32];
        if (fscanf(f, "%31s %ld", word, &period) == 2 && strcmp(word, "max") != 0) {
            quota = atol(word);
            if (quota > 0 && period > 0) {
                long q = (quota + period - 1) / period;
                if (q >= 1 && (n == 0 || q < n))
                    n = (int)q;
            }
        }
        fclose(f);
    }
#endif
    if (n == 0) {
#ifdef _WIN32
        /* the logical processors of every processor group (Windows puts
         * at most 64 in a group) */
        long cpus = (long)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
#else
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
#endif
        n = cpus < 1 ? 0 : cpus > TG_MAX_THREADS ? TG_MAX_THREADS : (int)cpus;
    }
    return n;
}

/* How the default was decided (for tg_threads_default_source). */
static _Atomic(const char *) default_source = "cpus";

/* The default thread count (see tg_get_num_threads); never fails. */
static int default_num_threads(void)
{
    int n = env_threads("TAPEGRAD_NUM_THREADS", 0);
    if (n > 0) {
        default_source = "TAPEGRAD_NUM_THREADS";
        return n;
    }
    n = env_threads("OMP_NUM_THREADS", 1);
    if (n > 0) {
        default_source = "OMP_NUM_THREADS";
        return n;
    }
    n = usable_cpus();
    default_source = "cpus";
    if (n < 1)
        n = 1;
    if (n > TG_MAX_THREADS)
        n = TG_MAX_THREADS;
    return n;
}

const char *tg_threads_default_source(void)
{
    tg_get_num_threads();
    return default_source;
}

int tg_get_num_threads(void)
{
    int n = atomic_load(&requested_threads);
    if (n == 0) {
        /* First call: install the default unless tg_set_num_threads() won
         * the race (compare-exchange keeps an explicit setting). */
        int expected = 0;
        int def = default_num_threads();
        if (atomic_compare_exchange_strong(&requested_threads, &expected, def))
            n = def;
        else
            n = expected;
    }
    return n;
}

int tg_set_num_threads(int n)
{
    if (n < 1 || n > TG_MAX_THREADS)
        return -1;
    atomic_store(&requested_threads, n);
    return 0;
}

/* --------------------------------------------------------------- the pool */

/* Item range of chunk c when [0, n) is cut into nchunks balanced pieces:
 * the first n % nchunks chunks get one extra item. */
static void chunk_range(const tg_job *job, int64_t c, int64_t *begin, int64_t *end)
{
    int64_t q = job->n / job->nchunks, r = job->n % job->nchunks;
    *begin = c * q + (c < r ? c : r);
    *end = *begin + q + (c < r ? 1 : 0);
}

/* Take chunks of `job` until none are left, running each one. */
static void run_chunks(tg_job *job)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&job->next, 1);
        if (c >= job->nchunks)
            return;
        int64_t b, e;
        chunk_range(job, c, &b, &e);
        job->fn(b, e, job->ctx);
    }
}

/* Spin (pause, and look at the clock every TG_SPIN_CHECK pauses) until
 * *gen differs from `seen` or `ns` nanoseconds have passed. */
static void spin_until_changed(atomic_uint *gen, unsigned seen, int64_t ns)
{
    if (ns <= 0)
        return;
    int64_t t0 = tg_monotonic_ns();
    for (;;) {
        for (int i = 0; i < TG_SPIN_CHECK; ++i) {
            if (atomic_load_explicit(gen, memory_order_relaxed) != seen)
                return;
            tg_cpu_relax();
        }
        if (tg_monotonic_ns() - t0 >= ns)
            return;
    }
}

/* The same until *n is 0. */
static void spin_until_zero(atomic_int *n, int64_t ns)
{
    if (ns <= 0)
        return;
    int64_t t0 = tg_monotonic_ns();
    for (;;) {
        for (int i = 0; i < TG_SPIN_CHECK; ++i) {
            if (atomic_load_explicit(n, memory_order_acquire) == 0)
                return;
            tg_cpu_relax();
        }
        if (tg_monotonic_ns() - t0 >= ns)
            return;
    }
}

/* A worker's life: wait for a new generation, help if asked, report, repeat.
 * arg is the worker's index. */
static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    tls_in_parallel = 1;            /* anything called from here runs inline */
#ifdef __linux__
    /* "tapegrad-3" in top -H, gdb and /proc/<pid>/task/<tid>/comm */
    char name[16];
    snprintf(name, sizeof name, "tapegrad-%d", id);
    pthread_setname_np(pthread_self(), name);
#endif

    tg_mutex_lock(&pool.lock);
    unsigned seen = pool.spawn_generation;
    tg_mutex_unlock(&pool.lock);
    for (;;) {
        /* Spin briefly without the lock: cheap when jobs come back-to-back. */
        spin_until_changed(&pool.generation, seen, get_spin_ns());
        if (atomic_load(&pool.generation) == seen) {
            tg_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.shutdown))
                tg_cond_wait(&pool.wake_cv, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            tg_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.shutdown))
            break;
        seen = atomic_load(&pool.generation);
        /* Not needed for this loop (a hint: the job's own count decides):
         * stay out, so the caller does not wait for us to leave it. */
        if (id >= atomic_load(&pool.helpers))
            continue;
        /* Join first, then look at the job: the caller withdraws the job
         * before it waits for `active` to reach 0, so either it sees us or
         * we see no job (or a later one, which is as alive). */
        atomic_fetch_add(&pool.active, 1);
        tg_job *job = atomic_load(&pool.job);
        if (job != NULL && id < job->helpers)
            run_chunks(job);
        if (atomic_fetch_sub(&pool.active, 1) == 1 && atomic_load(&pool.caller_sleeping)) {
            tg_mutex_lock(&pool.lock);
            tg_cond_signal(&pool.done_cv);
            tg_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Join every worker.  Caller holds pool.submit (not pool.lock). */
static void pool_stop(void)
{
    if (pool.nworkers == 0)
        return;
    tg_mutex_lock(&pool.lock);
    atomic_store(&pool.shutdown, 1);
    atomic_fetch_add(&pool.generation, 1);  /* ends a spinning worker's wait */
    tg_cond_broadcast(&pool.wake_cv);
    tg_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nworkers; ++i)
        tg_thread_join(pool.threads[i]);
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = 0;
    atomic_store(&pool.shutdown, 0);
}

#ifndef _WIN32 /* fork() is POSIX only */
static void atfork_prepare(void)
{
    /* A fork from inside a loop body would deadlock on our own locks; it is
     * unsupported, but at least do not hang the parent. */
    tls_fork_locked = !tls_in_parallel;
    if (tls_fork_locked) {
        tg_mutex_lock(&pool.submit);
        tg_mutex_lock(&pool.lock);
    }
}

static void atfork_parent(void)
{
    if (tls_fork_locked) {
        tg_mutex_unlock(&pool.lock);
        tg_mutex_unlock(&pool.submit);
    }
}

static void atfork_child(void)
{
    /* The workers do not exist here.  Drop them (their thread array is a
     * private copy now) and start from fresh synchronisation objects. */
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = 0;
    atomic_store(&pool.shutdown, 0);
    atomic_store(&pool.job, NULL);
    atomic_store(&pool.active, 0);
    atomic_store(&pool.sleepers, 0);
    atomic_store(&pool.caller_sleeping, 0);
    atomic_store(&pool.helpers, 0);
    if (tls_fork_locked) {
        /* We locked them in atfork_prepare: the child's copy is ours. */
        tg_mutex_unlock(&pool.lock);
        tg_mutex_unlock(&pool.submit);
    } else {
        /* Forked from inside a loop body (unsupported): the locks may be
         * held by threads that do not exist here; start over. */
        tg_mutex_init(&pool.submit);
        tg_mutex_init(&pool.lock);
    }
    /* No thread waits on the condition variables in the child. */
    tg_cond_init(&pool.wake_cv);
    tg_cond_init(&pool.done_cv);
}

static tg_once atfork_once = TG_ONCE_INIT;
static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
#endif

/* Make sure at least `want` workers exist (fewer if thread creation fails).
 * Caller holds pool.submit.  Returns the number of workers. */
static int pool_grow(int want)
{
    if (pool.nworkers >= want)
        return pool.nworkers;
#ifndef _WIN32
    tg_once_run(&atfork_once, register_atfork);
#endif

    /* Simplest correct way to grow: stop the old workers, start a new set
     * (growing is rare: it happens when the thread count goes up). */
    pool_stop();
    tg_thread *threads = malloc((size_t)want * sizeof *threads);
    if (threads == NULL)
        return 0;
    tg_mutex_lock(&pool.lock);
    pool.spawn_generation = atomic_load(&pool.generation);
    tg_mutex_unlock(&pool.lock);
    int made = 0;
    for (; made < want; ++made)
        if (tg_thread_create(&threads[made], worker_main, (void *)(intptr_t)made) != 0)
            break;
    pool.threads = threads;
    pool.nworkers = made;
    if (made == 0) {
        free(threads);
        pool.threads = NULL;
    }
    return made;
}

void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int nthreads = tg_get_num_threads();
    if (n <= grain || nthreads == 1 || tls_in_parallel) {
        fn(0, n, ctx);
        return;
    }
    if (tg_mutex_trylock(&pool.submit) != 0) {
        fn(0, n, ctx);              /* the pool is busy with another thread's loop */
        return;
    }

    int nworkers = pool_grow(nthreads - 1);
    if (nworkers > nthreads - 1)
        nworkers = nthreads - 1;    /* the pool never shrinks: use only what is asked */
    /* Every chunk gets >= grain items, and there may be up to
     * TG_CHUNKS_PER_THREAD chunks per thread: they are handed out one at a
     * time, so a thread whose core is shared (another process, or another
     * library's pool still spinning after its last call) simply ends up
     * taking fewer of them instead of holding everyone up. */
    int64_t nchunks = n / grain;
    if (nchunks > (int64_t)nthreads * TG_CHUNKS_PER_THREAD)
        nchunks = (int64_t)nthreads * TG_CHUNKS_PER_THREAD;
    if (nworkers < 1)
        nchunks = 1;
    if (nchunks <= 1) {
        tg_mutex_unlock(&pool.submit);
        fn(0, n, ctx);
        return;
    }

    int helpers = (int)(nchunks - 1 < nworkers ? nchunks - 1 : nworkers);
    tg_job job = { .fn = fn, .ctx = ctx, .n = n, .nchunks = nchunks, .helpers = helpers };
    atomic_init(&job.next, 0);

    /* Publish the job; wake the helpers only if one sleeps (a spinning one
     * sees the new generation by itself). */
    atomic_store(&pool.helpers, helpers);
    atomic_store(&pool.job, &job);
    atomic_fetch_add(&pool.generation, 1);
    atomic_fetch_add_explicit(&jobs_published, 1, memory_order_relaxed);
    if (atomic_load(&pool.sleepers) > 0) {
        tg_mutex_lock(&pool.lock);
        tg_cond_broadcast(&pool.wake_cv);
        tg_mutex_unlock(&pool.lock);
    }

    /* Work like a helper. */
    tls_in_parallel = 1;
    run_chunks(&job);
    tls_in_parallel = 0;

    /* Every chunk is taken.  Withdraw the job, so that no worker joins it
     * from now on, then wait for the workers that joined: they may still be
     * running their last chunk, and `job` lives on our stack. */
    (void)atomic_exchange(&pool.job, NULL);   /* a store: see "Store, then load" */
    /* The spin's acquire loads are a fast path only: the sequentially
     * consistent load below is the one ordered after the withdrawal above,
     * which the hand-over's correctness rests on. */
    spin_until_zero(&pool.active, get_spin_ns());
    if (atomic_load(&pool.active) != 0) {
        tg_mutex_lock(&pool.lock);
        (void)atomic_exchange(&pool.caller_sleeping, 1);   /* see "Store, then load" */
        while (atomic_load(&pool.active) != 0)
            tg_cond_wait(&pool.done_cv, &pool.lock);
        atomic_store(&pool.caller_sleeping, 0);
        tg_mutex_unlock(&pool.lock);
    }

    tg_mutex_unlock(&pool.submit);
}

int tg_threadpool_set_spin_us(int us)
{
    if (us < 0 || us > TG_SPIN_US_MAX)
        return -1;
    atomic_store(&spin_ns, (long long)us * 1000);
    return 0;
}

int tg_threadpool_get_spin_us(void)
{
    return (int)(get_spin_ns() / 1000);
}

uint64_t tg_threadpool_jobs(void)
{
    return atomic_load_explicit(&jobs_published, memory_order_relaxed);
}

void tg_threadpool_shutdown(void)
{
    if (tls_in_parallel)
        return;
    tg_mutex_lock(&pool.submit);
    pool_stop();
    tg_mutex_unlock(&pool.submit);
}
