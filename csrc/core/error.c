/*
 * error.c -- the thread-local error state and the dtype table.
 *
 * Every failing function records a status and a message here and returns
 * NULL or the status; the binding turns them into a Python exception.
 */
/* MinGW-w64: the C99 printf family (with %zu), not the old msvcrt one */
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1
#endif
#include "internal.h"

#include <stdio.h>

static _Thread_local tg_status err_status = TG_OK;
static _Thread_local char err_msg[1024];

tg_status tg_error_status(void) { return err_status; }

const char *tg_error_message(void) { return err_msg; }

void tg_error_clear(void) {
    err_status = TG_OK;
    err_msg[0] = '\0';
}

tg_status tg_error_set(tg_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_status = status;
    return status;
}

/* ---- dtypes -------------------------------------------------------------- */

size_t tg_dtype_size(tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return 4;
    case TG_FLOAT64: return 8;
    case TG_INT64: return 8;
    default: return 0;
    }
}

const char *tg_dtype_name(tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return "float32";
    case TG_FLOAT64: return "float64";
    case TG_INT64: return "int64";
    default: return "invalid";
    }
}

bool tg_dtype_is_float(tg_dtype dt) { return dt == TG_FLOAT32 || dt == TG_FLOAT64; }

tg_dtype tg_dtype_promote(tg_dtype a, tg_dtype b) {
    if (a == b) return a;
    /* any mix of two different dtypes among {f32, f64, i64} is f64 in NumPy */
    return TG_FLOAT64;
}
