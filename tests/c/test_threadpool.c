/* test_threadpool.c -- Check suite for csrc/kernels/threadpool.c.
 *
 * Exposes Suite *threadpool_suite(void).  Standalone run (from the repo root):
 *
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -pthread -Icsrc/kernels csrc/kernels/threadpool.c \
 *       tests/c/test_threadpool.c -DTG_THREADPOOL_TEST_MAIN \
 *       $(pkg-config --cflags --libs check) -lm -o /tmp/tg_tp_test && /tmp/tg_tp_test
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../csrc/kernels/threadpool.h"
#include "../../csrc/kernels/scratch.h"

static int saved_threads;
static void setup(void) { saved_threads = tg_get_num_threads(); }
static void teardown(void) { tg_set_num_threads(saved_threads); }

/* ---- coverage: every index exactly once, chunks of at least `grain` ---- */

typedef struct {
    atomic_int *count;
    int64_t n, grain;
    atomic_int bad_chunks;      /* chunks smaller than the grain (n > grain) */
    atomic_int calls;
} cover_ctx;

static void cover_fn(int64_t b, int64_t e, void *vctx)
{
    cover_ctx *c = vctx;
    atomic_fetch_add(&c->calls, 1);
    if (b < 0 || e > c->n || b >= e || (e - b < c->grain && c->n > c->grain))
        atomic_fetch_add(&c->bad_chunks, 1);
    for (int64_t i = b; i < e && i < c->n; ++i)
        if (i >= 0)
            atomic_fetch_add(&c->count[i], 1);
}

START_TEST(test_covers_each_index_once)
{
    static const int64_t ns[] = { 1, 2, 3, 7, 100, 1000, 100003 };
    static const int64_t grains[] = { 1, 3, 64, 1000, 0, -5 };
    for (int threads = 1; threads <= 4; ++threads) {
        ck_assert_int_eq(tg_set_num_threads(threads), 0);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; ++a)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; ++g) {
                cover_ctx c = { .n = ns[a], .grain = grains[g] < 1 ? 1 : grains[g] };
                c.count = calloc((size_t)c.n, sizeof *c.count);
                ck_assert_ptr_nonnull(c.count);
                tg_parallel_for(c.n, grains[g], cover_fn, &c);
                /* (No ck_assert per index: each one is a message to the runner.) */
                for (int64_t i = 0; i < c.n; ++i)
                    if (atomic_load(&c.count[i]) != 1)
                        ck_abort_msg("threads=%d n=%lld grain=%lld: index %lld ran %d times",
                                     threads, (long long)c.n, (long long)grains[g], (long long)i,
                                     atomic_load(&c.count[i]));
                ck_assert_int_eq(atomic_load(&c.bad_chunks), 0);
                ck_assert_int_le(atomic_load(&c.calls), threads * TG_CHUNKS_PER_THREAD);
                free(c.count);
            }
    }
}
END_TEST

static void never_called(int64_t b, int64_t e, void *ctx)
{
    (void)b; (void)e;
    *(int *)ctx = 1;
}

START_TEST(test_empty_range)
{
    int called = 0;
    tg_parallel_for(0, 1, never_called, &called);
    tg_parallel_for(-3, 1, never_called, &called);
    ck_assert_int_eq(called, 0);
}
END_TEST

/* ---- several threads really run chunks at the same time ---- */

typedef struct {
    atomic_int started;
    pthread_t ids[8];
    atomic_int nids;
} meet_ctx;

/* Each chunk announces itself, then waits (up to 5 s) until all chunks have
 * started: only possible if they run on different threads at once. */
static void meet_fn(int64_t b, int64_t e, void *vctx)
{
    meet_ctx *m = vctx;
    (void)e;
    int k = atomic_fetch_add(&m->nids, 1);
    if (k < 8)
        m->ids[k] = pthread_self();
    atomic_fetch_add(&m->started, 1);
    (void)b;
    for (int i = 0; i < 5000 && atomic_load(&m->started) < 2; ++i) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

/* tg_threadpool_jobs counts the loops handed to the workers, not those run
 * inline (one thread, one chunk, nested). */
static void noop_fn(int64_t b, int64_t e, void *vctx) { (void)b, (void)e, (void)vctx; }

START_TEST(test_jobs_counter)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    uint64_t j0 = tg_threadpool_jobs();
    tg_parallel_for(2, 1, noop_fn, NULL);
    ck_assert_uint_eq(tg_threadpool_jobs(), j0 + 1);
    tg_parallel_for(49, 25, noop_fn, NULL);     /* floor(49 / 25) = 1 chunk: inline */
    tg_parallel_for(10, 10, noop_fn, NULL);     /* n <= grain: inline */
    ck_assert_uint_eq(tg_threadpool_jobs(), j0 + 1);
    ck_assert_int_eq(tg_set_num_threads(1), 0);
    tg_parallel_for(1000, 1, noop_fn, NULL);    /* one thread: inline */
    ck_assert_uint_eq(tg_threadpool_jobs(), j0 + 1);
}
END_TEST

START_TEST(test_runs_in_parallel)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    meet_ctx m;
    memset(&m, 0, sizeof m);
    tg_parallel_for(2, 1, meet_fn, &m);
    ck_assert_int_eq(atomic_load(&m.started), 2);
    ck_assert_int_eq(atomic_load(&m.nids), 2);
    ck_assert_msg(!pthread_equal(m.ids[0], m.ids[1]), "both chunks ran on one thread");
}
END_TEST

/* ---- a nested call runs inline, on the same thread ---- */

typedef struct {
    atomic_int inner_wrong_thread;
    atomic_int inner_calls;
    atomic_llong inner_items;
} nest_ctx;

typedef struct {
    nest_ctx *outer;
    pthread_t self;
} inner_arg;

static void inner_fn(int64_t b, int64_t e, void *vctx)
{
    inner_arg *a = vctx;
    if (!pthread_equal(pthread_self(), a->self))
        atomic_fetch_add(&a->outer->inner_wrong_thread, 1);
    atomic_fetch_add(&a->outer->inner_calls, 1);
    atomic_fetch_add(&a->outer->inner_items, e - b);
}

static void outer_fn(int64_t b, int64_t e, void *vctx)
{
    for (int64_t i = b; i < e; ++i) {
        inner_arg a = { vctx, pthread_self() };
        tg_parallel_for(1000, 1, inner_fn, &a);    /* would split if not nested */
    }
}

START_TEST(test_nested_runs_inline)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    nest_ctx n;
    memset(&n, 0, sizeof n);
    tg_parallel_for(10, 1, outer_fn, &n);
    ck_assert_int_eq(atomic_load(&n.inner_wrong_thread), 0);
    ck_assert_int_eq(atomic_load(&n.inner_calls), 10);       /* one inline call each */
    ck_assert_int_eq(atomic_load(&n.inner_items), 10 * 1000);
}
END_TEST

/* ---- the thread count ---- */

START_TEST(test_set_num_threads)
{
    int before = tg_get_num_threads();
    ck_assert_int_ge(before, 1);
    ck_assert_int_le(before, TG_MAX_THREADS);
    ck_assert_int_eq(tg_set_num_threads(0), -1);
    ck_assert_int_eq(tg_set_num_threads(-1), -1);
    ck_assert_int_eq(tg_set_num_threads(TG_MAX_THREADS + 1), -1);
    ck_assert_int_eq(tg_get_num_threads(), before);             /* unchanged */
    ck_assert_int_eq(tg_set_num_threads(3), 0);
    ck_assert_int_eq(tg_get_num_threads(), 3);
    ck_assert_int_eq(tg_set_num_threads(1), 0);
    ck_assert_int_eq(tg_get_num_threads(), 1);
    /* With one thread everything runs inline, in a single call. */
    cover_ctx c = { .n = 1000, .grain = 1 };
    c.count = calloc(1000, sizeof *c.count);
    tg_parallel_for(1000, 1, cover_fn, &c);
    ck_assert_int_eq(atomic_load(&c.calls), 1);
    free(c.count);
}
END_TEST

/* ---- several application threads share the pool ---- */

static void *client_main(void *arg)
{
    int *ok = arg;
    for (int rep = 0; rep < 200; ++rep) {
        cover_ctx c = { .n = 777, .grain = 10 };
        c.count = calloc(777, sizeof *c.count);
        if (c.count == NULL) { *ok = 0; return NULL; }
        tg_parallel_for(777, 10, cover_fn, &c);
        for (int i = 0; i < 777; ++i)
            if (atomic_load(&c.count[i]) != 1)
                *ok = 0;
        free(c.count);
    }
    return NULL;
}

START_TEST(test_concurrent_callers)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    pthread_t t[3];
    int ok[3] = { 1, 1, 1 };
    for (int i = 0; i < 3; ++i)
        ck_assert_int_eq(pthread_create(&t[i], NULL, client_main, &ok[i]), 0);
    for (int i = 0; i < 3; ++i)
        pthread_join(t[i], NULL);
    ck_assert(ok[0] && ok[1] && ok[2]);
}
END_TEST

/* ---- fork: the child gets a working pool of its own ---- */

START_TEST(test_fork_child_rebuilds_pool)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    meet_ctx m;
    memset(&m, 0, sizeof m);
    tg_parallel_for(2, 1, meet_fn, &m);         /* the parent's pool exists */
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Child: the parent's workers are gone; a loop must still run in
         * parallel (meet_fn needs two threads) and cover everything. */
        meet_ctx mc;
        memset(&mc, 0, sizeof mc);
        tg_parallel_for(2, 1, meet_fn, &mc);
        int ok = atomic_load(&mc.started) == 2 && !pthread_equal(mc.ids[0], mc.ids[1]);
        cover_ctx c = { .n = 5000, .grain = 7 };
        c.count = calloc(5000, sizeof *c.count);
        tg_parallel_for(5000, 7, cover_fn, &c);
        for (int i = 0; i < 5000; ++i)
            ok = ok && atomic_load(&c.count[i]) == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child's parallel loop failed");
    /* The parent's pool still works too. */
    memset(&m, 0, sizeof m);
    tg_parallel_for(2, 1, meet_fn, &m);
    ck_assert_int_eq(atomic_load(&m.started), 2);
}
END_TEST

/* ---- shutdown, then the pool comes back on demand ---- */

START_TEST(test_shutdown_and_restart)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    for (int rep = 0; rep < 3; ++rep) {
        meet_ctx m;
        memset(&m, 0, sizeof m);
        tg_parallel_for(2, 1, meet_fn, &m);
        ck_assert_int_eq(atomic_load(&m.started), 2);
        ck_assert(!pthread_equal(m.ids[0], m.ids[1]));
        tg_threadpool_shutdown();
    }
    /* Growing: 4 threads after 2. */
    ck_assert_int_eq(tg_set_num_threads(4), 0);
    cover_ctx c = { .n = 4000, .grain = 1 };
    c.count = calloc(4000, sizeof *c.count);
    tg_parallel_for(4000, 1, cover_fn, &c);
    int wrong = 0;
    for (int i = 0; i < 4000; ++i)
        wrong += atomic_load(&c.count[i]) != 1;
    ck_assert_int_eq(wrong, 0);
    free(c.count);
    tg_threadpool_shutdown();
}
END_TEST

/* Many tiny loops in a row: checks the wake/sleep handshake (a lost wake-up
 * would hang here, caught by the test timeout). */
static void add_fn(int64_t b, int64_t e, void *ctx)
{
    atomic_fetch_add((atomic_llong *)ctx, e - b);
}

START_TEST(test_many_small_loops)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    atomic_llong total = 0;
    int reps = getenv("TG_TEST_LIGHT") ? 2000 : 20000;
    for (int r = 0; r < reps; ++r) {
        tg_parallel_for(2, 1, add_fn, &total);
        if (r % 1000 == 999) {       /* let the workers fall asleep sometimes */
            struct timespec ts = { 0, 2000000 };
            nanosleep(&ts, NULL);
        }
    }
    ck_assert_int_eq(atomic_load(&total), 2LL * reps);
}
END_TEST

/* The lock-free hand-over (threadpool.c, "Handing a loop over"): a worker
 * joins a generation before it looks at the job and the caller withdraws
 * the job before it waits for the joined workers, so every item runs once
 * whatever the interleaving.  The spins make the races likely: 0 (every
 * worker sleeps after every loop: the sleep/wake path each time), a few
 * microseconds (a worker gives up spinning just as the next loop is
 * published) and the default; 2 to 4 threads; gaps of 0 to ~20 us. */
static void count_each(int64_t b, int64_t e, void *ctx)
{
    atomic_int *seen = ctx;
    for (int64_t i = b; i < e; ++i)
        atomic_fetch_add(&seen[i], 1);
}

START_TEST(test_handover_under_every_spin)
{
    int saved = tg_threadpool_get_spin_us();
    int reps = getenv("TG_TEST_LIGHT") ? 150 : 1500;
    static atomic_int seen[64];
    const int spins[3] = {0, 3, saved};
    unsigned rng = 12345;
    for (int si = 0; si < 3; ++si) {
        ck_assert_int_eq(tg_threadpool_set_spin_us(spins[si]), 0);
        for (int nt = 2; nt <= 4; ++nt) {
            ck_assert_int_eq(tg_set_num_threads(nt), 0);
            for (int r = 0; r < reps; ++r) {
                rng = rng * 1103515245u + 12345u;
                int64_t n = 2 + (int64_t)((rng >> 16) % 63);
                for (int64_t i = 0; i < n; ++i)
                    atomic_store(&seen[i], 0);
                tg_parallel_for(n, 1, count_each, seen);
                for (int64_t i = 0; i < n; ++i)
                    if (atomic_load(&seen[i]) != 1)
                        ck_abort_msg("spin %d us, %d threads, loop %d of %lld items: item %lld ran %d times",
                                     spins[si], nt, r, (long long)n, (long long)i, atomic_load(&seen[i]));
                if ((rng >> 8) % 4 == 0) {
                    struct timespec ts = { 0, (long)((rng >> 4) % 20000) };
                    nanosleep(&ts, NULL);
                }
            }
        }
    }
    ck_assert_int_eq(tg_threadpool_set_spin_us(saved), 0);
}
END_TEST

/* ---- the spin before a worker sleeps (tg_threadpool_set_spin_us) ------- */

#ifdef __linux__
#include <dirent.h>
/* Voluntary context switches (sleeps) of the pool's workers, summed over
 * the threads of this process named "tapegrad-N" (/proc/self/task). */
static long worker_sleeps(void)
{
    long total = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int ours = fgets(line, sizeof line, f) && strncmp(line, "tapegrad-", 9) == 0;
        fclose(f);
        if (!ours)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                total += atol(line + 24);
        fclose(f);
    }
    closedir(d);
    return total;
}
#endif

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

START_TEST(test_spin_setting)
{
    int saved = tg_threadpool_get_spin_us();
    if (getenv("TAPEGRAD_SPIN_US") == NULL)
        ck_assert_int_eq(saved, TG_SPIN_US_DEFAULT);
    ck_assert_int_eq(tg_threadpool_set_spin_us(-1), -1);
    ck_assert_int_eq(tg_threadpool_set_spin_us(TG_SPIN_US_MAX + 1), -1);
    ck_assert_int_eq(tg_threadpool_get_spin_us(), saved);   /* unchanged by a refusal */
    ck_assert_int_eq(tg_threadpool_set_spin_us(TG_SPIN_US_MAX), 0);
    ck_assert_int_eq(tg_threadpool_get_spin_us(), TG_SPIN_US_MAX);
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    for (int spin = 0; spin <= 1; ++spin) {
        ck_assert_int_eq(tg_threadpool_set_spin_us(spin ? 1000000 : 0), 0);
        for (int rep = 0; rep < 50; ++rep) {
            cover_ctx c = { .n = 1000, .grain = 10 };
            c.count = calloc((size_t)c.n, sizeof *c.count);
            ck_assert_ptr_nonnull(c.count);
            tg_parallel_for(c.n, c.grain, cover_fn, &c);
            for (int64_t i = 0; i < c.n; ++i)
                if (atomic_load(&c.count[i]) != 1)
                    ck_abort_msg("spin %d: index %lld run %d times", spin, (long long)i,
                                 atomic_load(&c.count[i]));
            free(c.count);
        }
    }
    /* a worker spinning for up to a second stops at once on shutdown */
    tg_threadpool_shutdown();
    ck_assert_int_eq(tg_threadpool_set_spin_us(saved), 0);
}
END_TEST

#ifdef __linux__
START_TEST(test_spinning_worker_stays_awake)
{
    ck_assert_int_eq(tg_set_num_threads(2), 0);
    int saved = tg_threadpool_get_spin_us();
    atomic_llong total = 0;
    long slept[2];
    for (int spin = 0; spin <= 1; ++spin) {
        /* 0 us: the worker sleeps after each loop; 1 s: it spins through
         * the 20 ms gaps below (it may be preempted, an involuntary switch,
         * but it never sleeps) */
        ck_assert_int_eq(tg_threadpool_set_spin_us(spin ? TG_SPIN_US_MAX : 0), 0);
        tg_parallel_for(1 << 20, 1, add_fn, &total);   /* the worker exists and is awake */
        sleep_ms(5);
        long before = worker_sleeps();
        ck_assert_int_ge(before, 0);
        for (int r = 0; r < 10; ++r) {
            sleep_ms(20);
            tg_parallel_for(1 << 20, 1, add_fn, &total);
        }
        slept[spin] = worker_sleeps() - before;
    }
    tg_threadpool_shutdown();   /* ends the long spin */
    ck_assert_int_eq(tg_threadpool_set_spin_us(saved), 0);
    ck_assert_int_eq(atomic_load(&total), 22LL << 20);
    if (getenv("TG_TEST_LIGHT")) {
        /* valgrind (make valgrind sets TG_TEST_LIGHT) runs one thread at a
         * time: a spinning worker must block to let the others run, so its
         * sleeps say nothing there; the loops above still ran */
        printf("threadpool: spinning worker's sleeps NOT CHECKED HERE (TG_TEST_LIGHT: valgrind "
               "serialises threads)\n");
        return;
    }
    ck_assert_msg(slept[0] >= 5, "spin 0: the worker slept %ld times in 10 loops 20 ms apart; "
                  "expected about 10", slept[0]);
    ck_assert_msg(slept[1] == 0, "spin 1 s: the worker slept %ld times in 10 loops 20 ms apart; "
                  "expected 0", slept[1]);
}
END_TEST
#endif

/* The kernels' scratch buffers (scratch.h): 64-byte aligned, writable to
 * their full size, a freed block handed out again for the next request of
 * its size class (no new malloc: the page faults the cache exists for),
 * blocks above the cap not kept, trim frees what is kept, and concurrent
 * use from the pool's threads is safe. */
static void scratch_rounds(int64_t b, int64_t e, void *ctx) {
    (void)ctx;
    for (int64_t i = b; i < e; i++) {
        size_t n = (size_t)(1 + (i * 7919) % 300000);
        unsigned char *p = tg_scratch_alloc(n);
        ck_assert_ptr_nonnull(p);
        memset(p, (int)(i & 0xff), n);
        /* a block handed to two threads at once would be overwritten */
        for (volatile int k = 0; k < 200; k++) {}
        ck_assert_int_eq(p[0], (int)(i & 0xff));
        ck_assert_int_eq(p[n / 2], (int)(i & 0xff));
        ck_assert_int_eq(p[n - 1], (int)(i & 0xff));
        tg_scratch_free(p);
    }
}
START_TEST(test_scratch_buffers_are_kept_and_reused) {
    tg_scratch_trim();
    ck_assert_uint_eq(tg_scratch_cached_bytes(), 0);
    void *a = tg_scratch_alloc(300000);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a % 64, 0);
    memset(a, 1, 300000);
    tg_scratch_free(a);
    ck_assert_uint_ge(tg_scratch_cached_bytes(), 300000);
    void *b = tg_scratch_alloc(262145); /* the same class (up to 512 KiB) */
    ck_assert_ptr_eq(a, b);
    ck_assert_uint_eq(tg_scratch_cached_bytes(), 0);
    void *c = tg_scratch_alloc(300000); /* the only kept block is in use */
    ck_assert_ptr_ne(b, c);
    tg_scratch_free(b);
    tg_scratch_free(c);
    tg_scratch_free(NULL);
    /* above the cap: given back at once */
    void *big = tg_scratch_alloc(TG_SCRATCH_CACHE + 1);
    ck_assert_ptr_nonnull(big);
    size_t before = tg_scratch_cached_bytes();
    tg_scratch_free(big);
    ck_assert_uint_eq(tg_scratch_cached_bytes(), before);
    ck_assert_uint_le(tg_scratch_cached_bytes(), TG_SCRATCH_CACHE);
    /* absurd sizes fail cleanly */
    ck_assert_ptr_null(tg_scratch_alloc(SIZE_MAX));
    /* from every thread at once */
    int saved = tg_get_num_threads();
    tg_set_num_threads(2);
    tg_parallel_for(4000, 1, scratch_rounds, NULL);
    tg_set_num_threads(saved);
    ck_assert_uint_le(tg_scratch_cached_bytes(), TG_SCRATCH_CACHE);
    tg_scratch_trim();
    ck_assert_uint_eq(tg_scratch_cached_bytes(), 0);
}
END_TEST

/* A kept block goes back preferably to the thread that gave it back (its
 * lines are in that core's cache): another thread's block of the same size
 * class given back later, so on top of the list, is passed over; a thread
 * that gave none back takes the top one. */
typedef struct {
    void *p;
    size_t bytes;
} scratch_job;
static void *scratch_alloc_main(void *arg) {
    scratch_job *j = arg;
    j->p = tg_scratch_alloc(j->bytes);
    return NULL;
}
static void *scratch_free_main(void *arg) {
    tg_scratch_free(((scratch_job *)arg)->p);
    return NULL;
}
static void *scratch_alloc_free_main(void *arg) {
    scratch_job *j = arg;
    j->p = tg_scratch_alloc(j->bytes);
    tg_scratch_free(j->p);
    return NULL;
}

START_TEST(test_scratch_blocks_go_back_to_the_thread_that_gave_them_back) {
    tg_scratch_trim();
    void *mine = tg_scratch_alloc(300000);
    ck_assert_ptr_nonnull(mine);
    tg_scratch_free(mine);
    /* another thread takes a block of the same class (not this thread's:
     * it gave none back) -- so it gets `mine` -- and gives it back */
    scratch_job other = {.bytes = 300000};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, scratch_alloc_free_main, &other), 0);
    pthread_join(t, NULL);
    ck_assert_ptr_eq(other.p, mine);
    /* two blocks kept: this thread's below, another thread's on top */
    void *a = tg_scratch_alloc(300000), *b = tg_scratch_alloc(300000);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    tg_scratch_free(a); /* this thread's */
    scratch_job theirs = {.p = b};
    ck_assert_int_eq(pthread_create(&t, NULL, scratch_free_main, &theirs), 0);
    pthread_join(t, NULL); /* b given back by another thread: on top */
    void *again = tg_scratch_alloc(270000);
    ck_assert_ptr_eq(again, a); /* this thread's block, not the top one */
    /* a thread that gave none back takes the top one */
    scratch_job fresh = {.bytes = 300000};
    ck_assert_int_eq(pthread_create(&t, NULL, scratch_alloc_main, &fresh), 0);
    pthread_join(t, NULL);
    ck_assert_ptr_eq(fresh.p, b);
    tg_scratch_free(again);
    tg_scratch_free(fresh.p);
    ck_assert_uint_ge(tg_scratch_cached_bytes(), 2 * 300000);
    tg_scratch_trim();
    ck_assert_uint_eq(tg_scratch_cached_bytes(), 0);
}
END_TEST

Suite *threadpool_suite(void)
{
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("pool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_covers_each_index_once);
    tcase_add_test(tc, test_empty_range);
    tcase_add_test(tc, test_runs_in_parallel);
    tcase_add_test(tc, test_jobs_counter);
    tcase_add_test(tc, test_nested_runs_inline);
    tcase_add_test(tc, test_set_num_threads);
    tcase_add_test(tc, test_concurrent_callers);
    /* TG_TEST_NO_FORK=1 (.ci/arm64.sh, under qemu-user): qemu 7.2's user-mode
     * emulation aborts when a forked child of a threaded process starts
     * threads (an assertion inside qemu), so this one test cannot run there;
     * it runs in every native run. */
    if (getenv("TG_TEST_NO_FORK") == NULL)
        tcase_add_test(tc, test_fork_child_rebuilds_pool);
    else
        printf("threadpool: test_fork_child_rebuilds_pool NOT RUN HERE (TG_TEST_NO_FORK set)\n");
    tcase_add_test(tc, test_shutdown_and_restart);
    tcase_add_test(tc, test_many_small_loops);
    tcase_add_test(tc, test_handover_under_every_spin);
    tcase_add_test(tc, test_spin_setting);
    tcase_add_test(tc, test_scratch_buffers_are_kept_and_reused);
    tcase_add_test(tc, test_scratch_blocks_go_back_to_the_thread_that_gave_them_back);
#ifdef __linux__
    tcase_add_test(tc, test_spinning_worker_stays_awake);
#endif
    suite_add_tcase(s, tc);
    return s;
}

#ifdef TG_THREADPOOL_TEST_MAIN
int main(void)
{
    SRunner *sr = srunner_create(threadpool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
