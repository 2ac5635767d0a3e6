/*
 * internal.h -- what the files of the library share and the public header
 * does not show: allocation, error helpers, shape helpers, grad mode,
 * lifetime, the recording of tape entries and the strided iteration used by
 * every kernel driver.
 *
 * Floors (docs/design.md): core/ (tensor, storage, lifetime, recording)
 * calls no op; ops/ call core/ and kernels/; engine/ (the backward engine)
 * calls ops.  A file never calls a function of a floor above its own.
 *
 * Nothing here is part of the API.  Names start with tg__ (two underscores).
 */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "tapegrad.h"
#include "../kernels/compiler.h" /* GCC builtins where cl.exe lacks them */

#include <stdarg.h>
#include <string.h>

/* ---- allocation (alloc.c): 64-byte aligned, caching by size class ------ */
/* NULL (and TG_ERR_MEMORY set, naming `who`) on failure. */
void *tg__alloc(size_t nbytes, const char *who);
void tg__free(void *p, size_t nbytes);

/* ---- random (random.c): n doubles, uniform [0,1) (kind 0) or N(0,1) (1) */
void tg__random_fill(double *out, int64_t n, int kind);
/* The same from generator g (NULL: the default generator). */
void tg__random_fill_gen(tg_generator *g, double *out, int64_t n, int kind);
/* n integers uniform in [0, bound), bound >= 1, without modulo bias. */
void tg__random_below(tg_generator *g, uint64_t bound, int64_t n, uint64_t *out);

/* ---- kernel brackets (runtime.c): let other threads run in long kernels */
void *tg__kernel_begin(int64_t work); /* returns a token for tg__kernel_end */
void tg__kernel_end(void *token);

/* ---- integer arithmetic without undefined behaviour ----------------------
 * int64 tensors wrap around on overflow like NumPy's (two's complement):
 * computed in uint64_t, whose overflow is defined, then converted back. */
static inline int64_t tg__wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t tg__wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t tg__wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
/* double -> int64 as NumPy's cast gives on x86: the value truncated toward
 * zero, and INT64_MIN for NaN, +-inf and anything outside int64 (a plain C
 * cast of those is undefined behaviour). */
static inline int64_t tg__f2i(double v) {
    return (v >= -9223372036854775808.0 && v < 9223372036854775808.0) ? (int64_t)v : INT64_MIN;
}

/* ---- errors ------------------------------------------------------------- */
#define TG_FAIL(status, ...) (tg_error_set((status), __VA_ARGS__), (void *)0)

/* ---- shapes ------------------------------------------------------------- */
/* Validate a shape and return its element count in *numel; checks 0 <= ndim
 * <= TG_MAX_DIMS, sizes >= 0 and that numel * itemsize fits (TG_ERR_MEMORY). */
tg_status tg__check_shape(const char *who, int ndim, const int64_t *shape, size_t itemsize,
                          int64_t *numel);
/* Normalise axis into [0, ndim); TG_ERR_INDEX naming `who` if out of range. */
tg_status tg__norm_axis(const char *who, int64_t axis, int ndim, int64_t *out);
/* Normalise an axes list (NULL = all) into a bitmask; repeats are errors. */
tg_status tg__axes_mask(const char *who, const int64_t *axes, int naxes, int ndim,
                        uint32_t *mask);
/* NumPy broadcast of two shapes; TG_ERR_VALUE naming `who` on mismatch. */
tg_status tg__broadcast_shapes(const char *who, int na, const int64_t *sa, int nb,
                               const int64_t *sb, int *nout, int64_t *sout);
void tg__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
bool tg__same_shape(int na, const int64_t *sa, int nb, const int64_t *sb);
/* "(3, 4)" of a tensor into a small rotating static buffer (for messages). */
const char *tg__shp(const tg_tensor *t);
const char *tg__shp2(int ndim, const int64_t *shape);

/* ---- tensors ------------------------------------------------------------ */
/* A view of x's storage with a new shape/strides/offset (no autograd). */
tg_tensor *tg__view(tg_tensor *x, int ndim, const int64_t *shape, const int64_t *strides,
                    int64_t offset);
/* Element i (flat C order) as an int64: exact for int64 tensors (indices,
 * labels: tg_tensor_get_flat's double would round INT64_MAX to 2**63, whose
 * conversion back is undefined), tg__f2i for float ones. */
int64_t tg__get_flat_i64(const tg_tensor *t, int64_t i);
/* A contiguous copy (no autograd). */
tg_tensor *tg__copy(tg_tensor *x);
/* Strided copy of src into dst (same shape, or src broadcastable), converting
 * dtypes; no checks, no autograd. */
void tg__copy_into(tg_tensor *dst, const tg_tensor *src);
/* x converted to dt (new reference to x when it already has dt). No autograd. */
tg_tensor *tg__as_dtype(tg_tensor *x, tg_dtype dt);
/* Error unless float dtype. */
tg_status tg__require_float(const char *who, const tg_tensor *x);
tg_status tg__check_writable(const char *who, const tg_tensor *t);

/* ---- grad mode (runtime.c) ---------------------------------------------- */
/* The thread's grad mode, read inline on every op (tg_grad_enabled is the
 * public face of the same flag). */
extern TG_THREAD_LOCAL bool tg__grad_disabled;
static inline bool tg__grad_on(void) { return !tg__grad_disabled; }

/* ---- a VJP's writable incoming gradient (runtime.c) ---------------------- */
/* While the engine runs an op's own VJP, the gradient it passes in when no
 * one else can ever see that tensor (a backward()/grad() run whole with no
 * step hook, first order, the engine's only reference, a private dense
 * buffer); NULL otherwise.  An elementwise VJP (relu) given exactly this
 * tensor may write its result into it and return it: the same bits without
 * a new buffer.  Set and restored around each call (backward.c). */
extern TG_THREAD_LOCAL const tg_tensor *tg__vjp_writable_grad;
static inline bool tg__grad_writable(const tg_tensor *g) {
    return g && g == tg__vjp_writable_grad;
}

/* ---- lifetime (lifetime.c) ---------------------------------------------- */
/* Storage s gains a saved reference (an entry saved a tensor over it).
 * Returns true, with the reference given back at once, when the save hook
 * asks for a private copy and `may_copy`. */
bool tg__saved_inc(tg_storage *s, bool may_copy);
/* Give back everything e saved (tensors and output storage). */
void tg__free_saved(tg_entry *e);

/* ---- recording (record.c) ----------------------------------------------- */
/* An entry's op name ("add", or a Python-defined op's own name): the body of
 * tg_entry_name, inline so that files below recording can name an entry. */
static inline const char *tg__entry_name(const tg_entry *e) {
    return e->custom_name ? e->custom_name : e->op->name;
}
/* Should an op with these inputs record an entry? (grad mode on and a float
 * input requires grad) */
bool tg__should_record(int n, tg_tensor *const *in);
/* Record an entry for `out` (sets out->grad_fn and out->requires_grad).
 * Returns the entry (borrowed from out) or NULL on allocation failure or when
 * the record hook fails (error set; the caller releases out and fails). */
tg_entry *tg__record(const tg_opdef *op, int n, tg_tensor *const *in, tg_tensor *out);
/* Save a tensor for backward (retained, version remembered). */
tg_status tg__save(tg_entry *e, tg_tensor *t);
/* Keep the output's data so that tg_entry_output can rebuild it. */
void tg__save_output(tg_entry *e, tg_tensor *out);
/* The op's result is finished: record if needed.  Convenience used by most
 * ops: on failure releases out and returns NULL. `e_out` receives the entry
 * or NULL when nothing was recorded. */
tg_tensor *tg__finish(const tg_opdef *op, int n, tg_tensor *const *in, tg_tensor *out,
                      tg_entry **e_out);
/* Set the error "entry #n (op) was already used by a backward pass" and
 * return its status. */
tg_status tg__freed_error(const tg_entry *e);

/* ---- strided iteration -------------------------------------------------- */
/* Iterate over the elements of up to 4 operands sharing one shape (strides in
 * elements, 0 for broadcast).  The driver collapses contiguous dimensions and
 * calls fn once per innermost row with the row length and inner strides. */
#define TG_ITER_MAX 4
typedef void (*tg_row_fn)(int64_t n, char **ptrs, const int64_t *strides_bytes,
                          void *ctx);
void tg__iterate(int nops, int ndim, const int64_t *shape, char **base,
                 int64_t strides_bytes[][TG_MAX_DIMS], tg_row_fn fn, void *ctx);
/* The same, with the elements split among the thread pool when there is
 * enough work: cost = work units per element (1 for an add, about 8 for an
 * exp); a loop of more than TG_ELEMENTWISE_SPLIT_WORK units is split in
 * chunks of at least a quarter of that (tensor.c says why).  fn may be
 * called concurrently on disjoint pieces of rows, so it must only write the
 * elements it is given (true of every elementwise kernel; not of a
 * reduction into a shared accumulator). */
#define TG_PARALLEL_MIN_WORK ((int64_t)1 << 17)
#define TG_ELEMENTWISE_SPLIT_WORK ((int64_t)1 << 16)
void tg__iterate_parallel(int nops, int ndim, const int64_t *shape, char **base,
                          int64_t strides_bytes[][TG_MAX_DIMS], tg_row_fn fn, void *ctx,
                          int64_t cost);
/* Element strides of x broadcast to (ndim, shape) in BYTES. */
void tg__bcast_strides_bytes(const tg_tensor *x, int ndim, const int64_t *shape,
                             int64_t *out);

/* ---- op registry -------------------------------------------------------- */
#define TG_OP(name, sig) TG_OPID_##name,
enum {
#include "../ops/oplist.h"
    TG_OPID_COUNT
};
#undef TG_OP
#define TG_OP(name, sig) extern const tg_opdef tg_opdef_##name;
#include "../ops/oplist.h"
#undef TG_OP

/* Define an op in one block: name, then designated initialisers. */
#define TG_DEFINE_OP(opname, ...)                                                  \
    const tg_opdef tg_opdef_##opname = {.name = #opname, .id = TG_OPID_##opname,     \
                                        .file = __FILE__, .line = __LINE__, __VA_ARGS__}

/* The VJP the engine should call for e (override, custom, or built-in). */
tg_vjp_fn tg__vjp_for(const tg_entry *e, void **ctx);

/* Small helpers for VJPs written with ops (return NULL on failure). */
tg_tensor *tg__zeros_like(const tg_tensor *x);
tg_tensor *tg__ones_like(const tg_tensor *x);

#endif /* TG_INTERNAL_H */
