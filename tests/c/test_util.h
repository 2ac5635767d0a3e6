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

Suite *ops_suite(void);
Suite *tape_suite(void);
Suite *tensor_suite(void);
Suite *errors_suite(void);
Suite *gemm_suite(void);

#endif
