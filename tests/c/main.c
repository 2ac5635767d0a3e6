/* main.c -- runs every Check suite of the C core; exit status 0 iff all pass.
 *
 * The suites are declared in test_util.h and defined in the test_*.c files
 * (the Makefile links every one of them).  Select with Check's variables:
 *   CK_RUN_SUITE=tape CK_RUN_CASE=engine ./build/run_tests
 * CK_FORK=no runs in one process (for valgrind and debuggers). */
#include <stdio.h>
#include <stdlib.h>
#include "test_util.h"
#include "../../csrc/kernels/gemm.h"
#include "../../csrc/kernels/vmath.h"

/* Which kernel paths the gemm and vmath suites ran here (each path this CPU
 * can run is tested in turn) and which were compiled but not run: those
 * are listed, never counted as passed. */
static int print_paths(const char *family, tg_kernel_path_info *p, int n) {
    int missing = 0;
    printf("kernel paths, %s: run here:", family);
    for (int i = 0; i < n; i++)
        if (p[i].available) printf(" %s", p[i].name);
    printf("\n");
    for (int i = 0; i < n; i++)
        if (!p[i].available) {
            printf("kernel paths, %s: %s NOT RUN HERE (%s): compiled only, not tested\n", family,
                   p[i].name, p[i].detail);
            missing++;
        }
    return missing;
}

int main(void) {
    SRunner *sr = srunner_create(ops_suite());
    srunner_add_suite(sr, tape_suite());
    srunner_add_suite(sr, tensor_suite());
    srunner_add_suite(sr, errors_suite());
    srunner_add_suite(sr, gemm_suite());
    srunner_add_suite(sr, gemm_packb_suite());
    srunner_add_suite(sr, threadpool_suite());
    srunner_add_suite(sr, regressions_suite());
    srunner_add_suite(sr, vmath_suite());
    srunner_add_suite(sr, inplace_suite());
    srunner_add_suite(sr, portable_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tg_kernel_path_info g[8], v[8];
    int ng = tg_gemm_paths(g, 8), nv = tg_vmath_paths(v, 8);
    print_paths("gemm", g, ng < 8 ? ng : 8);
    print_paths("vmath", v, nv < 8 ? nv : 8);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
