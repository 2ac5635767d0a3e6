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

static TG_THREAD_LOCAL tg_status err_status = TG_OK;
static TG_THREAD_LOCAL char err_msg[1024];

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
    case TG_BOOL: return 1;
    case TG_INT32: return 4;
    case TG_UINT8: return 1;
    default: return 0;
    }
}

const char *tg_dtype_name(tg_dtype dt) {
    switch (dt) {
    case TG_FLOAT32: return "float32";
    case TG_FLOAT64: return "float64";
    case TG_INT64: return "int64";
    case TG_BOOL: return "bool";
    case TG_INT32: return "int32";
    case TG_UINT8: return "uint8";
    default: return "invalid";
    }
}

bool tg_dtype_is_float(tg_dtype dt) { return dt == TG_FLOAT32 || dt == TG_FLOAT64; }
bool tg_dtype_is_integer(tg_dtype dt) { return dt == TG_INT64 || dt == TG_INT32 || dt == TG_UINT8; }

tg_dtype tg_dtype_promote(tg_dtype a, tg_dtype b) {
    /* np.result_type over the six dtypes, in enum order
     * (float32, float64, int64, bool, int32, uint8); tested against NumPy */
    enum { F = TG_FLOAT32, D = TG_FLOAT64, L = TG_INT64, B = TG_BOOL, I = TG_INT32, U = TG_UINT8 };
    static const unsigned char table[TG_N_DTYPES][TG_N_DTYPES] = {
        /*        F  D  L  B  I  U */
        /* F */ {F, D, D, F, D, F},
        /* D */ {D, D, D, D, D, D},
        /* L */ {D, D, L, L, L, L},
        /* B */ {F, D, L, B, I, U},
        /* I */ {D, D, L, I, I, I},
        /* U */ {F, D, L, U, I, U},
    };
    if ((unsigned)a >= TG_N_DTYPES || (unsigned)b >= TG_N_DTYPES) return TG_FLOAT64;
    return (tg_dtype)table[a][b];
}

tg_dtype tg_dtype_float_of(tg_dtype dt) {
    if (tg_dtype_is_float(dt)) return dt;
    return (dt == TG_UINT8 || dt == TG_BOOL) ? TG_FLOAT32 : TG_FLOAT64;
}
