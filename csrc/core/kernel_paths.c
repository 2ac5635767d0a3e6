/*
 * kernel_paths.c -- the public face of the kernels' run-time dispatch
 * (tapegrad.h, "Kernel paths"): which path each family uses, what went
 * wrong while choosing, and forcing a path, with the library's errors.
 */
#include <string.h>

#include "internal.h"
#include "../kernels/dispatch.h"
#include "../kernels/gemm.h"
#include "../kernels/vmath.h"

static int is_family(const char *family, const char *name)
{
    return family != NULL && strcmp(family, name) == 0;
}

const char *tg_kernel_path(const char *family)
{
    if (is_family(family, "gemm"))
        return tg_gemm_isa();
    if (is_family(family, "vmath"))
        return tg_vmath()->name;
    tg_error_set(TG_ERR_VALUE, "kernel_path: unknown kernel family '%s' (expected 'gemm' or 'vmath')",
                 family ? family : "(null)");
    return NULL;
}

size_t tg_kernel_report(char *buf, size_t size)
{
    tg_gemm_isa(); /* make both choices first */
    tg_vmath();
    return tg_dispatch_log_copy(buf, size);
}

tg_status tg_kernel_force(const char *family, const char *path)
{
    const char *why;
    if (is_family(family, "gemm")) {
        if (tg_gemm_force_isa(path) == 0)
            return TG_OK;
        why = tg_gemm_isa_refusal(path);
    } else if (is_family(family, "vmath")) {
        if (tg_vmath_force(path) == 0)
            return TG_OK;
        why = tg_vmath_refusal(path);
    } else {
        return tg_error_set(TG_ERR_VALUE, "kernel_force: unknown kernel family '%s' (expected "
                            "'gemm' or 'vmath')", family ? family : "(null)");
    }
    if (strncmp(why, "not a ", 6) == 0)
        return tg_error_set(TG_ERR_VALUE, "kernel_force: '%s' is %s", path ? path : "(null)", why);
    return tg_error_set(TG_ERR_RUNTIME, "kernel_force: %s path '%s' refused: %s", family,
                        path ? path : "(default)", why);
}
