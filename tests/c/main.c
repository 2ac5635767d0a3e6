/* main.c -- runs every Check suite of the C core; exit status 0 iff all pass.
 *
 * The suites are declared in test_util.h and defined in the test_*.c files
 * (the Makefile links every one of them).  Select with Check's variables:
 *   CK_RUN_SUITE=tape CK_RUN_CASE=engine ./build/run_tests
 * CK_FORK=no runs in one process (for valgrind and debuggers). */
#include <stdlib.h>
#include "test_util.h"

int main(void) {
    SRunner *sr = srunner_create(ops_suite());
    srunner_add_suite(sr, tape_suite());
    srunner_add_suite(sr, tensor_suite());
    srunner_add_suite(sr, errors_suite());
    srunner_add_suite(sr, gemm_suite());
    srunner_add_suite(sr, threadpool_suite());
    srunner_add_suite(sr, regressions_suite());
    srunner_add_suite(sr, vmath_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
