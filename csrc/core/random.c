/*
 * random.c -- the library's random number generator.
 *
 * xoshiro256** (Blackman and Vigna), seeded through splitmix64: 64-bit
 * integer arithmetic only, so a seed gives the same stream everywhere.
 * Uniform doubles use the top 53 bits; normals use Box-Muller in double.
 * A default generator per process and any number of tg.Generator objects,
 * each guarded by its own mutex.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/platform.h"

/* A generator: the four words of xoshiro256**'s state, the seed it was last
 * given, and a mutex (a generator may be shared by threads).  The process
 * has one default generator (tg_manual_seed, tg.manual_seed); tg.Generator
 * objects are others, each its own stream. */
struct tg_generator {
    uint64_t s[4];
    uint64_t seed;
    tg_mutex lock;
};

static tg_generator def = {{0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull,
                            0x2545F4914F6CDD1Dull},
                           0, TG_MUTEX_INIT};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_locked(uint64_t *st) {
    uint64_t result = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return result;
}

static inline tg_generator *gen_or_default(tg_generator *g) { return g ? g : &def; }

tg_generator *tg_default_generator(void) { return &def; }

static void seed_locked(tg_generator *g, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
    g->seed = seed;
}

tg_generator *tg_generator_new(uint64_t seed) {
    tg_generator *g = malloc(sizeof *g);
    if (!g) return TG_FAIL(TG_ERR_MEMORY, "Generator: out of memory");
    tg_mutex_init(&g->lock);
    seed_locked(g, seed);
    return g;
}

void tg_generator_free(tg_generator *g) {
    if (g && g != &def) free(g);
}

void tg_generator_manual_seed(tg_generator *g, uint64_t seed) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    seed_locked(g, seed);
    tg_mutex_unlock(&g->lock);
}

uint64_t tg_generator_initial_seed(tg_generator *g) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    uint64_t s = g->seed;
    tg_mutex_unlock(&g->lock);
    return s;
}

void tg_generator_get_state(tg_generator *g, uint64_t state[4]) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    memcpy(state, g->s, sizeof g->s);
    tg_mutex_unlock(&g->lock);
}

tg_status tg_generator_set_state(tg_generator *g, const uint64_t state[4]) {
    if (!(state[0] | state[1] | state[2] | state[3]))
        return tg_error_set(TG_ERR_VALUE, "Generator.set_state: an all-zero state is not valid "
                            "(xoshiro256** would only ever produce zeros)");
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    memcpy(g->s, state, sizeof g->s);
    tg_mutex_unlock(&g->lock);
    return TG_OK;
}

void tg_manual_seed(uint64_t seed) { tg_generator_manual_seed(&def, seed); }

uint64_t tg_generator_u64(tg_generator *g) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    uint64_t r = next_locked(g->s);
    tg_mutex_unlock(&g->lock);
    return r;
}

uint64_t tg_random_u64(void) { return tg_generator_u64(&def); }

static inline double u01(uint64_t r) { return (double)(r >> 11) * 0x1.0p-53; }

double tg_random_uniform(void) { return u01(tg_random_u64()); }

/* Fill n doubles from generator g (NULL: the default one): uniform [0,1)
 * (kind 0) or standard normal (kind 1). */
void tg__random_fill_gen(tg_generator *g, double *out, int64_t n, int kind) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    if (kind == 0) {
        for (int64_t i = 0; i < n; i++) out[i] = u01(next_locked(g->s));
    } else {
        for (int64_t i = 0; i < n; i += 2) {
            /* 1 - u is in (0, 1], so the log is finite */
            double u1 = 1.0 - u01(next_locked(g->s));
            double u2 = u01(next_locked(g->s));
            double r = sqrt(-2.0 * log(u1));
            out[i] = r * cos(2.0 * TG_PI * u2);
            if (i + 1 < n) out[i + 1] = r * sin(2.0 * TG_PI * u2);
        }
    }
    tg_mutex_unlock(&g->lock);
}

void tg__random_fill(double *out, int64_t n, int kind) { tg__random_fill_gen(NULL, out, n, kind); }

/* n integers uniform in [0, bound) without modulo bias (Lemire's method with
 * rejection), bound >= 1. */
void tg__random_below(tg_generator *g, uint64_t bound, int64_t n, uint64_t *out) {
    g = gen_or_default(g);
    tg_mutex_lock(&g->lock);
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
    for (int64_t i = 0; i < n; i++) {
        for (;;) {
            uint64_t r = next_locked(g->s);
            /* the high 64 bits of r * bound, with the low bits checked */
            uint64_t rh = r >> 32, rl = r & 0xFFFFFFFFull, bh = bound >> 32, bl = bound & 0xFFFFFFFFull;
            uint64_t ll = rl * bl, lh = rl * bh, hl = rh * bl, hh = rh * bh;
            uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFull) + (hl & 0xFFFFFFFFull);
            uint64_t lo = (mid << 32) | (ll & 0xFFFFFFFFull);
            uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
            if (lo >= threshold) {
                out[i] = hi;
                break;
            }
        }
    }
    tg_mutex_unlock(&g->lock);
}
