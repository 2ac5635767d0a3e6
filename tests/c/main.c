/* main.c -- runs every Check suite of the C core; exit status 0 iff all pass.
 *
 * Suites written in other files are declared in test_util.h.  The optional
 * ones (gemm, threadpool) are weak references: a runner built before their
 * file exists still links and says which suite it skipped.
 * Select with Check's variables: CK_RUN_SUITE=tape CK_RUN_CASE=engine. */
#include <stdio.h>
#include <stdlib.h>
#include "test_util.h"

#pragma weak gemm_suite
#pragma weak threadpool_suite

int main(void) {
    SRunner *sr = srunner_create(ops_suite());
    srunner_add_suite(sr, tape_suite());
    srunner_add_suite(sr, tensor_suite());
    srunner_add_suite(sr, errors_suite());
    if (gemm_suite) srunner_add_suite(sr, gemm_suite());
    else fprintf(stderr, "note: gemm_suite not built (tests/c/test_gemm.c missing)\n");
    if (threadpool_suite) srunner_add_suite(sr, threadpool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
