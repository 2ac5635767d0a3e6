/*
 * runtime.c -- per-thread and per-process switches the whole core reads:
 * grad mode (is recording on?), and the kernel bracket, how an embedding
 * (the Python binding) lets other threads run while a long kernel computes.
 */
#include "internal.h"

/* ===================================================================== */
/* Grad mode                                                              */
/* ===================================================================== */

TG_THREAD_LOCAL bool tg__grad_disabled; /* zero-initialised: grad mode on (internal.h) */

TG_THREAD_LOCAL const tg_tensor *tg__vjp_writable_grad; /* internal.h */

bool tg_grad_enabled(void) { return !tg__grad_disabled; }

bool tg_set_grad_enabled(bool enabled) {
    bool prev = !tg__grad_disabled;
    tg__grad_disabled = !enabled;
    return prev;
}

static tg_kernel_leave_fn bracket_leave;
static tg_kernel_enter_fn bracket_enter;

void tg_set_kernel_bracket(tg_kernel_leave_fn leave, tg_kernel_enter_fn enter) {
    bracket_leave = leave;
    bracket_enter = enter;
}

/* A token marks "bracketed"; (void *)0 with no bracket set means nothing to do. */
static char not_bracketed;

void *tg__kernel_begin(int64_t work) {
    if (!bracket_leave || work < TG_BRACKET_MIN_WORK) return &not_bracketed;
    return bracket_leave();
}

void tg__kernel_end(void *token) {
    if (token == &not_bracketed || !bracket_enter) return;
    bracket_enter(token);
}
