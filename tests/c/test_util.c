#include "test_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

tg_tensor *tt_from(int ndim, const int64_t *shape, const double *v) {
    return tg_tensor_from_buffer(ndim, shape, TG_FLOAT64, v);
}

void tt_set_flat(tg_tensor *t, int64_t i, double v) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    char *p = (char *)tg_tensor_data(t) + off * (int64_t)tg_dtype_size(t->dtype);
    if (t->dtype == TG_FLOAT32) *(float *)p = (float)v;
    else if (t->dtype == TG_FLOAT64) *(double *)p = v;
    else *(int64_t *)p = (int64_t)v;
}

double tt_max_abs_diff(const tg_tensor *a, const tg_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs(tg_tensor_get_flat(a, i) - tg_tensor_get_flat(b, i));
        if (d > m || d != d) m = d;
    }
    return m;
}

tg_tensor *tt_vec(int64_t n, const double *v, bool rg) {
    tg_tensor *t = tg_tensor_from_buffer(1, &n, TG_FLOAT64, v);
    ck_assert_msg(t != NULL, "tt_vec: %s", tg_error_message());
    if (rg) ck_assert_int_eq(tg_tensor_set_requires_grad(t, true), TG_OK);
    return t;
}

double tt_item(const tg_tensor *t) {
    double v = NAN;
    ck_assert_msg(t != NULL, "tt_item: NULL tensor (%s)", tg_error_message());
    ck_assert_msg(tg_tensor_item(t, &v) == TG_OK, "tt_item: %s", tg_error_message());
    return v;
}

double tt_diff_to(const tg_tensor *t, const double *expect) {
    double m = 0;
    ck_assert_msg(t != NULL, "tt_diff_to: NULL tensor");
    for (int64_t i = 0; i < t->numel; i++) {
        double d = fabs(tg_tensor_get_flat(t, i) - expect[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

void tt_check_error(const char *file, int line, tg_status status, ...) {
    const char *msg = tg_error_message();
    ck_assert_msg(tg_error_status() == status, "%s:%d: expected status %d, got %d (message: \"%s\")",
                  file, line, (int)status, (int)tg_error_status(), msg);
    va_list ap;
    va_start(ap, status);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, w) != NULL, "%s:%d: message \"%s\" does not contain \"%s\"", file,
                      line, msg, w);
    va_end(ap);
}

bool tt_light(void) {
    const char *s = getenv("TG_TEST_LIGHT");
    return s && *s && strcmp(s, "0") != 0;
}

void tt_count_release(void *ctx) { (*(int *)ctx)++; }
