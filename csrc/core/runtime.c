/*
 * runtime.c -- the kernel bracket: how an embedding (the Python binding)
 * lets other threads run while a long kernel computes.
 */
#include "internal.h"

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
