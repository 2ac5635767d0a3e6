#include "test_util.h"

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
