/*
 * driver.c -- a standalone main for fuzz_ops.c, for compilers without
 * libFuzzer (gcc): replays corpus files and runs random programs.
 *
 *   fuzz_ops_driver FILE_OR_DIR...      run each file (every file of a directory)
 *   fuzz_ops_driver -seeds N [-seed S]  run N random inputs (1..512 bytes) made by a
 *                                       PRNG from seed S (default 1)
 *   fuzz_ops_driver -time T [-seed S]   random inputs for T seconds
 * Built with -fsanitize=address,undefined, a crash, a sanitizer report or a
 * contract violation (abort) ends the run with a non-zero status; the input
 * that caused it is written to ./crash-driver-<n> first for random inputs.
 * An input that runs longer than TG_FUZZ_INPUT_SECONDS (a hang, such as a
 * loop over 2^45 empty rows) ends the run the same way, from SIGALRM, so
 * that CI fails with the input in ./crash-driver-current instead of hanging.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#define TG_FUZZ_INPUT_SECONDS 60

static const char *current_input = "(none)";

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "driver: an input ran for more than 60 s (a hang?): ";
    ssize_t r = write(2, msg, sizeof msg - 1);
    r = write(2, current_input, strlen(current_input));
    r = write(2, "\n", 1);
    (void)r;
    _exit(3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                fclose(f);
                free(buf);
                return 1;
            }
            buf = p;
        }
        buf[n++] = (uint8_t)c;
    }
    fclose(f);
    current_input = path;
    alarm(TG_FUZZ_INPUT_SECONDS);
    LLVMFuzzerTestOneInput(buf ? buf : (const uint8_t *)"", n);
    alarm(0);
    free(buf);
    return 0;
}

static int run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int rc = 0, count = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        rc |= run_file(full);
        count++;
    }
    closedir(d);
    printf("driver: replayed %d files of %s\n", count, path);
    return rc;
}

static uint64_t rng_state;
static uint64_t next_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    long seeds = 0;
    double seconds = 0;
    uint64_t seed = 1;
    int rc = 0, files = 0;
    signal(SIGALRM, on_alarm);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-seeds") && i + 1 < argc) seeds = atol(argv[++i]);
        else if (!strcmp(argv[i], "-time") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else {
            rc |= run_path(argv[i]);
            files++;
        }
    }
    if (!seeds && !seconds && !files) {
        fprintf(stderr, "usage: %s [FILE|DIR]... [-seeds N] [-time SECONDS] [-seed S]\n", argv[0]);
        return 2;
    }
    rng_state = seed;
    time_t t0 = time(NULL);
    long done = 0;
    uint8_t buf[512];
    while ((seeds && done < seeds) || (seconds && difftime(time(NULL), t0) < seconds)) {
        size_t n = 1 + next_u64() % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)next_u64();
        /* keep the input in a file while it runs: if it crashes, it is there */
        FILE *f = fopen("crash-driver-current", "wb");
        if (f) {
            fwrite(buf, 1, n, f);
            fclose(f);
        }
        current_input = "random input, kept in crash-driver-current";
        alarm(TG_FUZZ_INPUT_SECONDS);
        LLVMFuzzerTestOneInput(buf, n);
        alarm(0);
        done++;
    }
    remove("crash-driver-current");
    if (done) printf("driver: %ld random inputs (seed %llu) in %.0f s: no failure\n", done,
                     (unsigned long long)seed, difftime(time(NULL), t0));
    return rc;
}
