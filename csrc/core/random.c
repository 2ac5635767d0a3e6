/*
 * random.c -- the library's random number generator.
 *
 * xoshiro256** (Blackman and Vigna), seeded through splitmix64: 64-bit
 * integer arithmetic only, so a seed gives the same stream everywhere.
 * Uniform doubles use the top 53 bits; normals use Box-Muller in double.
 * One generator per process, guarded by a mutex.
 */
#include "internal.h"

#include <math.h>
#include "../kernels/platform.h"

static tg_mutex lock = TG_MUTEX_INIT;
static uint64_t st[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull,
                         0x2545F4914F6CDD1Dull};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_locked(void) {
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

void tg_manual_seed(uint64_t seed) {
    tg_mutex_lock(&lock);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&x);
    tg_mutex_unlock(&lock);
}

uint64_t tg_random_u64(void) {
    tg_mutex_lock(&lock);
    uint64_t r = next_locked();
    tg_mutex_unlock(&lock);
    return r;
}

static inline double u01(uint64_t r) { return (double)(r >> 11) * 0x1.0p-53; }

double tg_random_uniform(void) { return u01(tg_random_u64()); }

/* Fill n doubles: uniform [0,1) (kind 0) or standard normal (kind 1). */
void tg__random_fill(double *out, int64_t n, int kind) {
    tg_mutex_lock(&lock);
    if (kind == 0) {
        for (int64_t i = 0; i < n; i++) out[i] = u01(next_locked());
    } else {
        for (int64_t i = 0; i < n; i += 2) {
            /* 1 - u is in (0, 1], so the log is finite */
            double u1 = 1.0 - u01(next_locked());
            double u2 = u01(next_locked());
            double r = sqrt(-2.0 * log(u1));
            out[i] = r * cos(2.0 * M_PI * u2);
            if (i + 1 < n) out[i + 1] = r * sin(2.0 * M_PI * u2);
        }
    }
    tg_mutex_unlock(&lock);
}
