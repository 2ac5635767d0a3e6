/*
 * inplace.c -- x += y, x -= y, x *= y, x /= y, x %= y, x //= y: the out-of-place op, then its
 * result written back into x (never recorded on the tape).  It lives with
 * the ops because it calls them; the in-place helpers that call no op
 * (fill_, copy_, axpy_) stay in core/tensor.c.
 */
#include "ops_internal.h"

tg_status tg_tensor_inplace_(tg_tensor *dst, const tg_tensor *src, char op) {
    const char *who = op == '+' ? "iadd" : op == '-' ? "isub" : op == '*' ? "imul"
                      : op == '%' ? "imod" : op == 'f' ? "ifloordiv" : "idiv";
    if (tg__check_writable(who, dst)) return tg_error_status();
    bool saved = tg_set_grad_enabled(false);
    tg_tensor *r = NULL;
    tg_tensor *a = dst, *b = (tg_tensor *)src;
    switch (op) {
    case '+': r = tg_add(a, b); break;
    case '-': r = tg_sub(a, b); break;
    case '*': r = tg_mul(a, b); break;
    case '/': r = tg_div(a, b); break;
    case '%': r = tg_remainder(a, b); break;     /* x %= y */
    case 'f': r = tg_floor_divide(a, b); break;  /* x //= y */
    default: tg_error_set(TG_ERR_VALUE, "inplace: unknown operator '%c'", op);
    }
    tg_set_grad_enabled(saved);
    if (!r) return tg_error_status();
    tg_status st = TG_OK;
    if (!tg__same_shape(r->ndim, r->shape, dst->ndim, dst->shape))
        st = tg_error_set(TG_ERR_VALUE, "%s: result of shape %s cannot be written into %s", who,
                          tg__shp(r), tg__shp(dst));
    else if (r->dtype != dst->dtype && !tg_dtype_is_float(dst->dtype) &&
             !(tg_dtype_is_integer(dst->dtype) && !tg_dtype_is_float(r->dtype)))
        st = tg_error_set(TG_ERR_TYPE,
                          "%s: the result is %s and cannot be stored in a %s tensor in place "
                          "(NumPy's same_kind rule)",
                          who, tg_dtype_name(r->dtype), tg_dtype_name(dst->dtype));
    else {
        tg__copy_into(dst, r);
        dst->storage->version++;
    }
    tg_tensor_release(r);
    return st;
}
