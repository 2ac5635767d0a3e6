/* test_util.h -- helpers shared by the Check suites. */
#ifndef TG_TEST_UTIL_H
#define TG_TEST_UTIL_H

#include <check.h>
#include <math.h>
#include "tapegrad.h"

/* Fail the test with the library's message if `x` is NULL / not TG_OK. */
#define ck_tg(x)                                                                          \
    do {                                                                                  \
        if (!(x)) ck_abort_msg("%s failed: %s", #x, tg_error_message());                  \
    } while (0)
#define ck_tg_ok(x)                                                                       \
    do {                                                                                  \
        tg_status st_ = (x);                                                              \
        ck_assert_msg(st_ == TG_OK, "%s returned %d: %s", #x, (int)st_, tg_error_message()); \
    } while (0)

/* A 1-D or 2-D float64 tensor from literal values. */
tg_tensor *tt_from(int ndim, const int64_t *shape, const double *v);
/* Set element i (C order) of a possibly strided float tensor. */
void tt_set_flat(tg_tensor *t, int64_t i, double v);
/* Max |a - b| over all elements (same shape). */
double tt_max_abs_diff(const tg_tensor *a, const tg_tensor *b);
/* A float64 vector of n literal values; with rg, a leaf that requires grad. */
tg_tensor *tt_vec(int64_t n, const double *v, bool rg);
/* The value of a one-element tensor (fails the test otherwise). */
double tt_item(const tg_tensor *t);
/* Max |t[i] - expect[i]| over t's elements in C order. */
double tt_diff_to(const tg_tensor *t, const double *expect);
/* Does the last error have `status` and contain every NULL-terminated word? */
#define ck_tg_error(status, ...) tt_check_error(__FILE__, __LINE__, (status), __VA_ARGS__, (const char *)0)
void tt_check_error(const char *file, int line, tg_status status, ...);
/* TG_TEST_LIGHT set (valgrind runs): heavy tests use smaller sizes. */
bool tt_light(void);
/* A counter for release callbacks: tt_count_release(ctx) adds 1 to *(int *)ctx. */
void tt_count_release(void *ctx);

Suite *ops_suite(void);
Suite *portable_suite(void);
Suite *tape_suite(void);
Suite *tensor_suite(void);
Suite *errors_suite(void);
Suite *gemm_suite(void);
Suite *threadpool_suite(void);
Suite *regressions_suite(void);
Suite *vmath_suite(void);
Suite *inplace_suite(void); /* test_inplace.c (issue 14) */
Suite *gemm_packb_suite(void); /* test_gemm_packb.c (issue 16) */

#endif
