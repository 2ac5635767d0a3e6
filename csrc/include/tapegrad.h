/*
 * tapegrad.h -- the public C API of tapegrad, a small reverse-mode automatic
 * differentiation library with a tape.
 *
 * ------------------------------------------------------------------------
 * Tutorial: the first gradient
 * ------------------------------------------------------------------------
 *
 *     #include <stdio.h>
 *     #include "tapegrad.h"
 *
 *     int main(void) {
 *         int64_t shape[1] = {3};
 *         double xs[3] = {1, 2, 3}, ws[3] = {4, 5, 6};
 *         tg_tensor *x = tg_tensor_from_buffer(1, shape, TG_FLOAT64, xs);
 *         tg_tensor *w = tg_tensor_from_buffer(1, shape, TG_FLOAT64, ws);
 *         tg_tensor_set_requires_grad(w, true);     // w is a leaf we want d/dw of
 *
 *         tg_tensor *y = tg_mul(x, w);               // records tape entry #1 (mul)
 *         tg_tensor *loss = tg_sum(y, NULL, 0, false); // records entry #2 (sum)
 *         if (!loss || tg_backward(loss, NULL, 0) != TG_OK) {
 *             fprintf(stderr, "%s\n", tg_error_message());
 *             return 1;
 *         }
 *         const double *g = tg_tensor_data(w->grad);  // dloss/dw = x = {1, 2, 3}
 *         printf("%g %g %g\n", g[0], g[1], g[2]);
 *
 *         tg_tensor_release(loss); tg_tensor_release(y);   // every new reference
 *         tg_tensor_release(w);    tg_tensor_release(x);   // is released once
 *         return 0;
 *     }
 *
 * ------------------------------------------------------------------------
 * The rules
 * ------------------------------------------------------------------------
 *
 * Ownership.  Tensors, storages and tape entries are reference counted.
 *   - A function whose name ends in _new, _empty, _zeros ... (every creation
 *     function) and every op (tg_add, tg_matmul, ...) returns a NEW reference:
 *     the caller owns it and releases it once with tg_tensor_release().
 *   - Arguments are BORROWED: a function never steals the caller's reference;
 *     it takes its own reference when it keeps an argument (an op keeps its
 *     inputs on the tape entry it records).
 *   - Pointers returned by accessors (t->grad, t->grad_fn, tg_entry_input(),
 *     tg_error_message()) are borrowed: valid while the owner lives; retain
 *     them to keep them longer.
 *   - tg_*_release(NULL) is a no-op.
 *
 * Errors.  No function calls exit(), abort() or assert() on user input.
 *   - Functions returning a pointer return NULL on failure.
 *   - Functions returning tg_status return TG_OK (0) on success.
 *   - On failure the library records a status and a message in thread-local
 *     storage, read with tg_error_status() and tg_error_message(), e.g.
 *       "matmul: shapes (3, 4) and (5, 6) are not aligned: 4 (dim 1) != 5 (dim 0)".
 *     The message always starts with the op or function name.
 *   - Successful calls do not clear the last error; call tg_error_clear().
 *
 * Threads.  Grad mode and the error state are per thread.  Reference counts
 * are not atomic: one tensor graph must be used by one thread at a time (the
 * Python binding guarantees this with the GIL; kernels that run on worker
 * threads never touch reference counts).
 *
 * Layout.  A tensor is a view: shape, strides (in ELEMENTS, may be 0 for a
 * broadcast dimension or negative for a reversed slice) and an offset (in
 * elements) into a storage.  Transpose, slicing, broadcast_to and reshape of
 * a contiguous tensor share the storage; everything else makes new memory.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_VERSION "0.1.0"
#define TG_MAX_DIMS 8

/* ===================================================================== */
/* Errors                                                                 */
/* ===================================================================== */

typedef enum tg_status {
    TG_OK = 0,
    TG_ERR_VALUE = 1,   /* bad shape, axis, argument value  -> Python ValueError */
    TG_ERR_TYPE = 2,    /* unsupported dtype                -> TypeError        */
    TG_ERR_INDEX = 3,   /* index out of range               -> IndexError       */
    TG_ERR_MEMORY = 4,  /* allocation failed or size overflows -> MemoryError   */
    TG_ERR_RUNTIME = 5, /* graph state: freed entry, no grad ... -> RuntimeError */
    TG_ERR_CALLBACK = 6 /* a user callback (Python op, hook) failed; the binding
                           keeps the callback's own exception                  */
} tg_status;

/* The status of the last failure on this thread (TG_OK if none since clear). */
tg_status tg_error_status(void);
/* The message of the last failure on this thread ("" if none). Borrowed. */
const char *tg_error_message(void);
/* Forget the last failure. */
void tg_error_clear(void);
/* Record a failure (printf-style message); returns `status` so that callers
 * can write `return tg_error_set(TG_ERR_VALUE, "...")`.  For callbacks. */
tg_status tg_error_set(tg_status status, const char *fmt, ...)
#if defined(__MINGW32__) /* MinGW-w64: checked as C99 printf (the core uses MinGW's own, with %zu) */
    __attribute__((format(gnu_printf, 2, 3)))
#elif defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ===================================================================== */
/* Dtypes                                                                 */
/* ===================================================================== */

typedef enum tg_dtype {
    TG_FLOAT32 = 0, /* the default */
    TG_FLOAT64 = 1, /* for gradient checks */
    TG_INT64 = 2,   /* labels and indices; never requires grad */
    TG_BOOL = 3,    /* comparisons, masks, all/any: one byte, 0 or 1 */
    TG_INT32 = 4,
    TG_UINT8 = 5,   /* raw image bytes (MNIST) */
    TG_N_DTYPES = 6
} tg_dtype;
/* Only float tensors require grad; integer and bool tensors never do. */

size_t tg_dtype_size(tg_dtype dt);       /* 4, 8, 8, 1, 4, 1; 0 for an invalid dtype */
const char *tg_dtype_name(tg_dtype dt);  /* "float32", "float64", "int64", "bool", "int32", "uint8" */
bool tg_dtype_is_float(tg_dtype dt);
bool tg_dtype_is_integer(tg_dtype dt);   /* int64, int32, uint8 (not bool) */
/* NumPy's promotion (np.result_type) for every pair: bool < uint8 < int32 <
 * int64 and the floats; uint8 + int32 -> int32; bool/uint8 + float32 ->
 * float32; int32/int64 + float32 -> float64; anything + float64 -> float64. */
tg_dtype tg_dtype_promote(tg_dtype a, tg_dtype b);
/* The float dtype a float function (exp, sqrt, true division) computes in
 * for an input of dtype dt: dt itself for floats, float64 for int64/int32,
 * float32 for uint8/bool (NumPy says float16, which tapegrad does not have). */
tg_dtype tg_dtype_float_of(tg_dtype dt);

/* ===================================================================== */
/* Storage: a reference-counted block of bytes                           */
/* ===================================================================== */

/* Called once when a borrowed storage dies, with the pointer and context
 * given to tg_storage_borrow.  The binding uses it to drop a NumPy array. */
typedef void (*tg_release_fn)(void *data, void *ctx);

typedef struct tg_storage {
    int64_t refcount;
    void *data;          /* 64-byte aligned when owned */
    size_t nbytes;
    tg_release_fn release; /* NULL: the storage owns `data` */
    void *release_ctx;
    uint64_t version;    /* bumped by every in-place write (safe aliasing) */
    bool readonly;       /* writes through the library are refused */
    /* Safe aliasing (see tg_set_save_hook): how many references tape entries
     * hold on this storage for backward (saved tensors, saved outputs). */
    int64_t saved_count;
    /* extension point: data for the binding, user_release(user_data) is
     * called when the storage dies (before its bytes are released) */
    void *user_data;
    void (*user_release)(void *user_data);
} tg_storage;

/* A new storage owning `nbytes` UNINITIALISED bytes, 64-byte aligned.  NULL + TG_ERR_MEMORY on failure. */
tg_storage *tg_storage_new(size_t nbytes);
/* A storage that borrows `data` (not copied).  `release(data, ctx)` is called
 * when the last reference goes (may be NULL).  NULL on failure, in which case
 * `release` is NOT called: the caller still owns `data`. */
tg_storage *tg_storage_borrow(void *data, size_t nbytes, tg_release_fn release,
                              void *ctx, bool readonly);
void tg_storage_retain(tg_storage *s);
void tg_storage_release(tg_storage *s);

/* ===================================================================== */
/* Tensors                                                                */
/* ===================================================================== */

typedef struct tg_tensor tg_tensor;
typedef struct tg_entry tg_entry;

/* A hook on a tensor's gradient (see tg_tensor_set_grad_hook).  Called with
 * the gradient flowing into `t`; may store a NEW reference to a replacement
 * gradient in *replacement (same shape and dtype) or leave it NULL.
 * Returns TG_OK, or a failure status (and sets the error) to stop backward. */
typedef tg_status (*tg_grad_hook_fn)(tg_tensor *t, tg_tensor *grad,
                                     tg_tensor **replacement, void *ctx);

/* The fields are public for speed and inspection; treat them as read-only
 * and change them only through the functions below. */
struct tg_tensor {
    int64_t refcount;
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t strides[TG_MAX_DIMS]; /* in elements */
    int64_t offset;               /* in elements, into storage */
    int64_t numel;
    tg_storage *storage;          /* owned reference */
    uint64_t id;                  /* unique, for display ("t17") */
    bool requires_grad;
    bool retains_grad;
    tg_tensor *grad;              /* owned reference or NULL */
    tg_entry *grad_fn;            /* owned reference or NULL (NULL = leaf) */
    char *name;                   /* owned copy or NULL (e.g. "fc1.weight") */
    /* extension point: data for the binding, released with the tensor */
    void *user_data;
    void (*user_release)(void *user_data);
    tg_grad_hook_fn grad_hook;    /* see tg_tensor_set_grad_hook */
    void *grad_hook_ctx;
    /* backward bookkeeping (engine-private) */
    tg_tensor *bw_pending;
    int64_t bw_deps;
    uint64_t bw_mark;
};

/* --- creation: each returns a NEW reference, or NULL on failure ---------
 * shape: `ndim` sizes, 0 <= ndim <= TG_MAX_DIMS, each >= 0.  Fails with
 * TG_ERR_VALUE for a bad shape and TG_ERR_MEMORY when the byte count
 * overflows or cannot be allocated. */
tg_tensor *tg_tensor_empty(int ndim, const int64_t *shape, tg_dtype dt);
tg_tensor *tg_tensor_zeros(int ndim, const int64_t *shape, tg_dtype dt);
tg_tensor *tg_tensor_ones(int ndim, const int64_t *shape, tg_dtype dt);
tg_tensor *tg_tensor_full(int ndim, const int64_t *shape, double value, tg_dtype dt);
tg_tensor *tg_tensor_scalar(double value, tg_dtype dt); /* 0-d */
/* [start, stop) by step, like numpy.arange; step != 0. */
tg_tensor *tg_tensor_arange(double start, double stop, double step, tg_dtype dt);
/* n x m with ones on diagonal k. */
tg_tensor *tg_tensor_eye(int64_t n, int64_t m, int64_t k, tg_dtype dt);
/* Copies numel elements of dtype `dt` from the C-contiguous buffer `data`. */
tg_tensor *tg_tensor_from_buffer(int ndim, const int64_t *shape, tg_dtype dt,
                                 const void *data);
/* A view over `storage` (which it retains): the way to share foreign memory
 * (tg_storage_borrow) without a copy.  Strides and offset in elements; fails
 * (TG_ERR_VALUE) if any element would fall outside the storage. */
tg_tensor *tg_tensor_from_storage(tg_storage *storage, tg_dtype dt, int ndim,
                                  const int64_t *shape, const int64_t *strides,
                                  int64_t offset);
/* Uniform in [low, high) and normal(mean, std) from the library generator. */
tg_tensor *tg_tensor_rand(int ndim, const int64_t *shape, double low, double high,
                          tg_dtype dt);
tg_tensor *tg_tensor_randn(int ndim, const int64_t *shape, double mean, double std,
                           tg_dtype dt);
/* Bernoulli(p) mask of 0/1 values. */
tg_tensor *tg_tensor_bernoulli(int ndim, const int64_t *shape, double p, tg_dtype dt);

/* The generator: xoshiro256** seeded through splitmix64; normals by the
 * Box-Muller transform in double precision.  The same seed gives the same
 * numbers on every platform.  The process has one default generator (the
 * functions without a generator argument use it); tg_generator objects are
 * independent streams.  Every function taking a tg_generator * takes NULL
 * for the default one.  Each generator has its own lock. */
typedef struct tg_generator tg_generator;
void tg_manual_seed(uint64_t seed);
uint64_t tg_random_u64(void);
double tg_random_uniform(void); /* [0, 1) with 53 random bits */
tg_generator *tg_default_generator(void);
tg_generator *tg_generator_new(uint64_t seed); /* NULL on allocation failure */
void tg_generator_free(tg_generator *g);       /* not the default one */
void tg_generator_manual_seed(tg_generator *g, uint64_t seed);
uint64_t tg_generator_initial_seed(tg_generator *g); /* the last seed given */
uint64_t tg_generator_u64(tg_generator *g);
void tg_generator_get_state(tg_generator *g, uint64_t state[4]);
tg_status tg_generator_set_state(tg_generator *g, const uint64_t state[4]); /* not all zero */
/* rand / randn / bernoulli from generator g. */
tg_tensor *tg_tensor_rand_gen(int ndim, const int64_t *shape, double low, double high, tg_dtype dt,
                              tg_generator *g);
tg_tensor *tg_tensor_randn_gen(int ndim, const int64_t *shape, double mean, double std, tg_dtype dt,
                               tg_generator *g);
tg_tensor *tg_tensor_bernoulli_gen(int ndim, const int64_t *shape, double p, tg_dtype dt,
                                   tg_generator *g);
/* Integers uniform in [low, high) (int64); high > low. */
tg_tensor *tg_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, tg_generator *g);
/* A random permutation of 0..n-1 (int64, Fisher-Yates). */
tg_tensor *tg_randperm(int64_t n, tg_generator *g);
/* num_samples category indices (int64) from each row of probs (1-D: one
 * distribution, 2-D: one per row; non-negative, finite weights that need
 * not sum to 1, at least one positive), with or without replacement (then
 * num_samples <= the number of positive weights of each row). */
tg_tensor *tg_multinomial(tg_tensor *probs, int64_t num_samples, bool replacement,
                          tg_generator *g);

/* The caching allocator behind tensor data (see alloc.c). */
typedef struct tg_memory_stats_t {
    size_t live_bytes;    /* bytes held by live storages (rounded to size class) */
    size_t peak_bytes;    /* maximum of live_bytes since start or reset */
    size_t cached_bytes;  /* freed bytes kept for reuse */
    uint64_t n_alloc;     /* allocations requested */
    uint64_t n_cache_hits;/* of which served from the cache */
} tg_memory_stats_t;
void tg_memory_stats(tg_memory_stats_t *out);
void tg_memory_empty_cache(void); /* return cached blocks to the system */
void tg_memory_reset_peak(void);

/* --- references --------------------------------------------------------- */
void tg_tensor_retain(tg_tensor *t);
void tg_tensor_release(tg_tensor *t);

/* --- properties ---------------------------------------------------------- */
/* Address of element [0, 0, ...] (storage data + offset). Borrowed. */
void *tg_tensor_data(const tg_tensor *t);
bool tg_tensor_is_contiguous(const tg_tensor *t); /* C order */
/* Element at a flat C-order index (0 <= i < numel) as a double. */
double tg_tensor_get_flat(const tg_tensor *t, int64_t i);
/* The value of a one-element tensor. TG_ERR_VALUE if numel != 1. */
tg_status tg_tensor_item(const tg_tensor *t, double *out);
/* Copy all elements in C order into `dst` (numel * itemsize bytes). */
void tg_tensor_copy_to_buffer(const tg_tensor *t, void *dst);
/* Writes "shape (3, 4)" style text: "(3, 4)" into buf; returns buf. */
char *tg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* --- autograd flags ------------------------------------------------------ */
/* Leaves only, float dtypes only (TG_ERR_TYPE for int64, TG_ERR_RUNTIME for
 * a non-leaf). */
tg_status tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad);
/* Keep the gradient of a non-leaf in t->grad after backward. */
tg_status tg_tensor_retain_grad(tg_tensor *t);
/* Replace t->grad (retained; NULL clears).  Shape and dtype must match;
 * TG_ERR_VALUE for grad == t (or grad->grad == t).  A gradient that leads
 * back to t in another way (its graph has t as an input) makes a reference
 * cycle that is never freed, as in PyTorch: store a detached gradient. */
tg_status tg_tensor_set_grad(tg_tensor *t, tg_tensor *grad);
/* A new tensor sharing t's storage, with no grad_fn and requires_grad false. */
tg_tensor *tg_tensor_detach(tg_tensor *t);
/* Copy the name (NULL clears). */
tg_status tg_tensor_set_name(tg_tensor *t, const char *name);
/* Install (or with fn == NULL remove) the gradient hook.  The library does not
 * own ctx; the binding frees it through user_release. */
void tg_tensor_set_grad_hook(tg_tensor *t, tg_grad_hook_fn fn, void *ctx);

/* In-place, never recorded on the tape; refused (TG_ERR_RUNTIME) on a tensor
 * that requires grad while grad mode is on, and on read-only storage.  Each
 * bumps the storage version, so that a tensor saved for backward that is
 * overwritten afterwards is detected. */
tg_status tg_tensor_fill_(tg_tensor *t, double value);
tg_status tg_tensor_copy_(tg_tensor *dst, const tg_tensor *src); /* broadcasts src */
/* dst = dst (op) src with broadcasting; op is one of '+', '-', '*', '/', '%' (remainder)
 * and 'f' (floor_divide).  Recorded on the tape like the in-place ops of inplace.c
 * (x += y on a tensor in the graph rebases its grad_fn); see tg_inplace_apply below. */
tg_status tg_tensor_inplace_(tg_tensor *dst, const tg_tensor *src, char op);
/* y += alpha * x (x broadcast to y's shape, any strides; float32, float64,
 * int64): the gradient accumulator.  The same bits on any number of threads. */
tg_status tg_tensor_axpy_(tg_tensor *y, double alpha, const tg_tensor *x);

/* Grad mode (per thread; on by default).  Returns the previous mode. */
bool tg_grad_enabled(void);
bool tg_set_grad_enabled(bool enabled);

/* ===================================================================== */
/* The tape                                                               */
/* ===================================================================== */

typedef struct tg_opdef tg_opdef;

/* A vector-Jacobian product.  Given the gradient of the entry's output
 * (grad_out, borrowed), store in grad_in[i] a NEW reference to the gradient
 * of input i, for every i with tg_entry_needs_grad(e, i) (others may stay
 * NULL; NULL also means "zero").  A gradient may have the shape of the
 * broadcast output: the engine sums it back to the input's shape.  Written
 * with tapegrad ops, so that with create_graph the VJP is itself recorded.
 * Returns TG_OK or a failure status with the error set. */
typedef tg_status (*tg_vjp_fn)(tg_entry *e, tg_tensor *grad_out, tg_tensor **grad_in,
                               void *ctx);

/* Op parameters stored on an entry (what the VJP needs besides tensors). */
typedef struct tg_params {
    int64_t axes[TG_MAX_DIMS]; /* reduction / permutation axes */
    int naxes;
    bool keepdims;
    int ndim;                  /* a shape (input shape, target shape) */
    int64_t shape[TG_MAX_DIMS];
    int64_t ints[4 * TG_MAX_DIMS]; /* op-specific (slice starts/steps, pads, ...) */
    double f[4];               /* op-specific scalars (alpha, eps, p, ...) */
    int64_t i[4];              /* op-specific integers (axis, reduction, ...) */
} tg_params;

#define TG_ENTRY_INLINE_INPUTS 3
#define TG_ENTRY_MAX_SAVED 4

struct tg_entry {
    int64_t refcount;
    const tg_opdef *op;
    uint64_t seq;                 /* monotonically increasing, process-wide */
    int n_inputs;
    tg_tensor **inputs;           /* owned references (the graph's edges) */
    tg_tensor *inputs_inline[TG_ENTRY_INLINE_INPUTS];
    int n_saved;
    tg_tensor *saved[TG_ENTRY_MAX_SAVED]; /* owned; freed after backward */
    uint64_t saved_version[TG_ENTRY_MAX_SAVED];
    tg_tensor *out;               /* WEAK: cleared when the output dies */
    tg_dtype out_dtype;
    int out_ndim;
    int64_t out_shape[TG_MAX_DIMS];
    tg_storage *out_storage;      /* owned when the op saved its output */
    int64_t out_strides[TG_MAX_DIMS];
    int64_t out_offset;
    tg_params params;
    bool freed;                   /* saved tensors released by a backward */
    /* a custom entry (tg_custom_record): */
    const char *custom_name;      /* owned copy */
    tg_vjp_fn custom_vjp;
    void *custom_ctx;
    void (*custom_release)(void *ctx);
    /* extension point: data for the binding */
    void *user_data;
    void (*user_release)(void *user_data);
    /* the in-place write that recorded this entry ("add_", "setitem", ...;
     * a static string), NULL for an ordinary op (see inplace.c) */
    const char *inplace;
    /* engine-private */
    tg_tensor *bw_pending;
    int64_t bw_deps;
    uint64_t bw_mark;
};

void tg_entry_retain(tg_entry *e);
void tg_entry_release(tg_entry *e);
const char *tg_entry_name(const tg_entry *e);   /* op name or custom name */
tg_tensor *tg_entry_input(const tg_entry *e, int i); /* borrowed */
/* Does input i need a gradient (float input that requires grad)? */
bool tg_entry_needs_grad(const tg_entry *e, int i);
/* Saved tensor i (borrowed), or NULL + TG_ERR_RUNTIME when the entry was
 * freed by an earlier backward ("... call backward(retain_graph=True) ...")
 * or the tensor was modified in place after it was saved. */
tg_tensor *tg_entry_saved(tg_entry *e, int i);
/* The entry's output as a NEW reference that is connected to the graph
 * (grad_fn == e), for VJPs that reuse the forward result (exp, tanh, ...).
 * NULL + TG_ERR_RUNTIME if the op did not save it or the entry was freed. */
tg_tensor *tg_entry_output(tg_entry *e);

/* --- the op registry ----------------------------------------------------- */

/* What an op's floating-point work is counted in, for the profiler
 * (tg.ops()'s 'flops', tapegrad.inspect.estimate_flops): an entry's forward
 * count is `forward` times the number of units, its backward count
 * `backward` times the units (times the inputs that need a gradient when
 * per_grad_input).  An op block that sets nothing gets TG_FLOPS_AUTO. */
typedef enum tg_flops_kind {
    TG_FLOPS_AUTO = 0,  /* from the other marks: one unit per output element;
                         * forward 1; backward 3 for one input and cost > 1
                         * (transcendental), 1 for one input otherwise, 2 per
                         * input needing a gradient for two or more inputs */
    TG_FLOPS_NONE,      /* moves or indexes data: no arithmetic (0) */
    TG_FLOPS_OUTPUT,    /* a unit per output element */
    TG_FLOPS_INPUT,     /* a unit per element of the first input */
    TG_FLOPS_MATMUL,    /* a unit per output element and term of the inner
                         * dimension (K = the first input's last size): M N K */
    TG_FLOPS_CONV,      /* output elements times the weight's elements per
                         * output channel (input 1 without its first axis) */
    TG_FLOPS_CONV_GRAD, /* first input's elements times input 1's elements
                         * without its first axis (conv2d's VJP kernels) */
} tg_flops_kind;
typedef struct tg_flops {
    tg_flops_kind per;  /* the unit */
    int forward;        /* flops per unit, forward */
    int backward;       /* flops per unit, backward */
    bool per_grad_input; /* the backward count is per input needing a gradient */
} tg_flops;

/* Each op is defined once; the registry exports its description. */
struct tg_opdef {
    const char *name;        /* "matmul" */
    int id;                  /* index in the registry */
    int arity;               /* number of tensor inputs; -1 = variadic */
    uint32_t diff_mask;      /* bit i: input i is differentiable */
    const char *dtypes;      /* "float" or "float,int64" ... */
    const char *forward;     /* plain text formula, "C = A B" */
    const char *forward_tex; /* LaTeX */
    const char *vjp;         /* plain text, "dA = dC B^T, dB = A^T dC" */
    const char *vjp_tex;     /* LaTeX */
    const char *doc;         /* one line */
    const char *file;        /* source file and line of the definition */
    int line;
    tg_vjp_fn backward;      /* NULL for non-differentiable ops */
    /* For registry-driven tests and tools: call the op generically on
     * tensors and parameters, and example inputs to call it with (grammar
     * above tg_op_example_count below, e.g. "3x4,4" or "+2x3" or "4x5,i5:4|i0=1"). */
    tg_tensor *(*apply)(tg_tensor *const *in, int n_in, const tg_params *p);
    const char *examples;
    int cost;                /* work per element relative to an add (0 counts as 1); the
                              * transcendental kernels (exp, tanh, ...) are 8 */
    /* The structure of vjp_tex, for tools that annotate it (the stepper):
     * the symbol of the output's gradient it reads ("\\bar C", NULL if
     * none), and the symbols of the gradients it writes, one per
     * differentiable input in input order, ';'-separated ("\\bar A;\\bar B"). */
    const char *grad_out_tex;
    const char *grad_in_tex;
    /* A composite op: its forward is made of other ops, which record their
     * own entries, so it has no VJP of its own (backward stays NULL) and its
     * gradient is theirs -- the tape shows the constituents, not this op.
     * It is still differentiable (diff_mask), and vjp/vjp_tex state the
     * gradient the constituents compute, for the docs and the stepper. */
    bool composite;
    /* How the profiler counts its flops (see tg_flops above); e.g.
     * .flops = {TG_FLOPS_INPUT, 5, 4}; unset = TG_FLOPS_AUTO. */
    tg_flops flops;
    /* Also a function of tg.nn.functional (PyTorch's F.): set for the ops of
     * other families that networks call there (the activations, linear);
     * every public op of nn.c and conv.c is one anyway (tg_op_functional). */
    bool functional;
    /* Optional, for a one-input view op (slice, reshape, permute) whose VJP
     * only moves the output's gradient into the input's shape: a NEW view
     * of `target` (a tensor of the input's shape) with the output's shape,
     * each element where the VJP puts the output's element, or NULL (no
     * error) when that layout is not a view.  The engine then adds a
     * gradient straight into the input's pending sum (TG_DIRECT). */
    tg_tensor *(*grad_view)(tg_entry *e, tg_tensor *target);
};

/* An op's calling signature, from its line in oplist.h: what the Python
 * binding generates for it (a module function and a Tensor method). */
typedef enum tg_op_sig {
    TG_SIG_UNARY,    /* tg_tensor *f(tg_tensor *x): tg.exp(x), x.exp() */
    TG_SIG_BINARY,   /* tg_tensor *f(tg_tensor *a, tg_tensor *b): tg.add(a, b), a.add(b) */
    TG_SIG_REDUCE,   /* f(x, axes, naxes, keepdims): tg.sum(x, axis=None, keepdims=False) */
    TG_SIG_CUSTOM,   /* any other signature: bound by hand in csrc/python/ */
    TG_SIG_INTERNAL, /* called by VJPs and the engine only; no Python function */
} tg_op_sig;
tg_op_sig tg_op_signature(const tg_opdef *op);
const char *tg_op_sig_name(tg_op_sig sig); /* "unary", "binary", ... */
/* The op's flop count rule with TG_FLOPS_AUTO resolved (never AUTO). */
tg_flops tg_op_flops(const tg_opdef *op);
const char *tg_flops_kind_name(tg_flops_kind k); /* "none", "output", ... */
/* Whether the op is a function of tg.nn.functional: marked .functional, or a
 * public (not INTERNAL) op of the network families, csrc/ops/nn.c and conv.c. */
bool tg_op_functional(const tg_opdef *op);

int tg_op_count(void);
const tg_opdef *tg_op_get(int i);                /* NULL if out of range */
const tg_opdef *tg_op_find(const char *name);    /* NULL if unknown */
/* Make the engine call `fn(e, grad_out, grad_in, ctx)` instead of the op's
 * built-in VJP (fn == NULL restores it).  The library does not own ctx. */
tg_status tg_op_set_vjp_override(const tg_opdef *op, tg_vjp_fn fn, void *ctx);
/* The override in force for `op` (NULL: none, the built-in VJP runs); its
 * context pointer is stored in *ctx when ctx is not NULL.  Reads only. */
tg_vjp_fn tg_op_get_vjp_override(const tg_opdef *op, void **ctx);

/* Registry-driven testing and tools.  An op's `examples` string lists input
 * sets separated by ';'.  Each is comma-separated inputs, then optionally
 * '|' and space-separated parameters.  An input is [kind]shape where shape
 * is sizes joined by 'x' ("3x4"), or '-' for a 0-d tensor; kind is nothing
 * (normal(0, 1)), '+' (uniform in [0.5, 2]), '~' (|x| in [0.2, 1], random
 * sign: away from kinks), 'u' (uniform in (0, 1)), 'g' (uniform in [1.2, 3]), 'b' (0 or 1), 'iN:'
 * (int64 in [0, N)); a 'T' after the kind makes a non-contiguous view (the
 * transpose of a tensor of reversed shape).  Parameters: axes=0,1 (absent:
 * all axes, naxes = -1), keep=1, shape=2,3, ints=..., f0..f3=x, i0..i3=n. */
int tg_op_example_count(const tg_opdef *op);
/* Build the inputs of example k (new references in inputs[0..*n_inputs),
 * at most 8) with float inputs in dtype `dt`, and its parameters. */
tg_status tg_op_example(const tg_opdef *op, int k, tg_dtype dt, int *n_inputs,
                        tg_tensor **inputs, tg_params *params);
/* Parse the parameter part of an example ("axes=0 keep=1"). */
tg_status tg_params_parse(const char *text, tg_params *params);
/* Call the op generically (op->apply). */
tg_tensor *tg_op_apply(const tg_opdef *op, int n_inputs, tg_tensor *const *inputs,
                       const tg_params *params);

/* --- custom entries (ops defined outside the library, e.g. in Python) --- */
/* Record a custom op: `out` was computed by the caller (with grad mode off).
 * If grad mode is on and any input requires grad, returns a NEW reference to
 * a tensor sharing out's storage whose grad_fn is a new entry named `name`
 * with `inputs` as its edges; backward calls `vjp(e, grad_out, grad_in, ctx)`
 * and `release(ctx)` when the entry dies.  Otherwise returns a new reference
 * to `out` itself (and calls release(ctx) at once).  NULL on failure; then
 * release(ctx) has been called. */
tg_tensor *tg_custom_record(const char *name, int n_inputs, tg_tensor *const *inputs,
                            tg_tensor *out, tg_vjp_fn vjp, void *ctx,
                            void (*release)(void *ctx));
/* Save a tensor on a custom entry (for tg_entry_saved in its VJP), right
 * after tg_custom_record.  Not the entry's own output (TG_ERR_VALUE) nor
 * anything computed from it: that would be a reference cycle. */
tg_status tg_entry_save(tg_entry *e, tg_tensor *t);

/* --- recording everything in a region (tg.Tape) -------------------------- */
typedef struct tg_recorder tg_recorder;
/* A new recorder, made active on this thread (nested recorders all record).
 * NULL on failure. */
tg_recorder *tg_recorder_begin(void);
/* Stop recording (the recorder must be the innermost active one; returns
 * TG_ERR_RUNTIME otherwise).  The entries stay readable until free. */
tg_status tg_recorder_end(tg_recorder *r);
int64_t tg_recorder_count(const tg_recorder *r);
tg_entry *tg_recorder_entry(const tg_recorder *r, int64_t i); /* borrowed */
void tg_recorder_free(tg_recorder *r); /* ends it if active, releases entries */

/* --- backward ------------------------------------------------------------ */
enum {
    TG_RETAIN_GRAPH = 1, /* keep saved tensors for another backward */
    TG_CREATE_GRAPH = 2, /* record the VJPs: gradients of gradients (implies
                            TG_RETAIN_GRAPH: the new graph reuses the old) */
    TG_NO_ACCUMULATE = 4, /* do not touch .grad: return grads of `inputs` (tg_grad) */
    TG_DIRECT = 8, /* view ops with a grad_view (slice, reshape, permute) add
                     their gradient straight into the pending sum of their
                     input (or, through a chain of them, of the chain's
                     first input), so the step record shows NULL for that
                     input; ignored with TG_CREATE_GRAPH or a step hook.
                     tg_backward and tg_grad set it. */
    TG_PRIVATE_STEPS = 16 /* the caller of a stepper promises not to read
                             the step records' gradients (a profiler timing
                             the steps): the engine may then work as in
                             tg_backward -- a VJP may write over its incoming
                             gradient, a leaf's first gradient becomes its
                             .grad without a copy.  tg_backward and tg_grad
                             set it. */
};

/* loss.backward(): seed must be NULL for a one-element target (seed 1) and
 * have the target's shape otherwise.  Accumulates into the .grad of leaves
 * that require grad and of non-leaves that retain it. */
tg_status tg_backward(tg_tensor *target, tg_tensor *seed, int flags);

/* Gradients of sum_i <outputs[i], seeds[i]> with respect to inputs[j],
 * stored as NEW references in results[j] (a zero tensor for an input that
 * the outputs do not depend on).  .grad is not touched. */
tg_status tg_grad(int n_out, tg_tensor *const *outputs, tg_tensor *const *seeds,
                  int n_in, tg_tensor *const *inputs, int flags, tg_tensor **results);

/* The stepping engine: plain backward is begin + step until done + end. */
typedef struct tg_stepper tg_stepper;

/* What one step did (all borrowed, valid until the next step or end). */
typedef struct tg_step {
    tg_entry *entry;
    int64_t index;          /* 0-based position in the order */
    tg_tensor *grad_out;    /* gradient of the entry's output */
    int n_inputs;
    tg_tensor **grad_in;    /* per input, after summing broadcast axes; NULL = none */
    uint32_t *summed_mask;  /* per input: bit k = axis k of the VJP's result was summed */
    int *summed_ndim;       /* per input: ndim of the VJP's result before summing */
} tg_step;

/* Called after each step.  A non-TG_OK return stops backward with that status. */
typedef tg_status (*tg_step_hook_fn)(tg_stepper *bw, const tg_step *step, void *ctx);

/* Collect the entries reachable from the outputs and order them by
 * descending sequence number.  `capture` (n_capture tensors, may be NULL)
 * are the tensors whose gradients tg_backward_result returns (with
 * TG_NO_ACCUMULATE).  NULL on failure. */
tg_stepper *tg_backward_begin(int n_out, tg_tensor *const *outputs,
                               tg_tensor *const *seeds, int flags, int n_capture,
                               tg_tensor *const *capture);
/* Run exactly one entry's VJP and accumulate.  Returns 1 if a step ran,
 * 0 when all steps are done, -1 on failure (error set; call end). */
int tg_backward_step(tg_stepper *bw);
int64_t tg_backward_size(const tg_stepper *bw);      /* number of entries */
int64_t tg_backward_position(const tg_stepper *bw);  /* steps done so far */
tg_entry *tg_backward_entry(const tg_stepper *bw, int64_t i); /* borrowed */
const tg_step *tg_backward_last_step(const tg_stepper *bw);  /* NULL before the first */
/* The gradient accumulated so far for entry i's output (borrowed, may be NULL). */
tg_tensor *tg_backward_pending(const tg_stepper *bw, int64_t i);
/* NEW reference to the gradient of capture[j] (TG_NO_ACCUMULATE), or NULL. */
tg_tensor *tg_backward_result(tg_stepper *bw, int j);
void tg_backward_set_hook(tg_stepper *bw, tg_step_hook_fn fn, void *ctx);
/* Finish: frees saved tensors of the entries that ran (unless retain_graph).
 * Safe to call at any point; remaining steps are not run. */
void tg_backward_end(tg_stepper *bw);

/* Whether tg_backward and tg_grad pass TG_DIRECT (on by default); returns
 * the previous setting.  Off, every step runs its op's VJP: the reference
 * the direct route is tested against. */
bool tg_set_direct_backward(bool on);

/* A process-wide hook called after every step of every backward (anomaly
 * detection, profiling).  NULL removes it. */
void tg_set_global_step_hook(tg_step_hook_fn fn, void *ctx);

/* Safe aliasing: a process-wide hook told when a storage's contents start and
 * stop mattering to a backward pass.  Tape entries count the references they
 * keep for backward (tg__save of an input, a saved output) in
 * s->saved_count; the hook is called with delta = +1 when the count goes from
 * 0 to 1 and with delta = -1 when it drops back to 0 (a backward without
 * retain_graph freed the saved tensors, or the last entry holding them died).
 * The Python binding uses it to make the NumPy arrays that alias s read-only
 * meanwhile (and writeable again afterwards), so that a write through NumPy,
 * which the version counter cannot see, cannot silently change a gradient.
 * For delta = +1, returning true means "this storage has writable aliases
 * that cannot be made read-only": for a tensor that an op saves (not an
 * output) the core then calls the hook with -1 at once and saves a private
 * copy of the tensor instead (the hook is then called for the copy's
 * storage).  The return value is ignored otherwise.  Called on the
 * thread running the op or the backward (GIL held in the binding); it must
 * not call back into the tape.  NULL (the default) removes it. */
typedef bool (*tg_save_hook_fn)(tg_storage *s, int delta, void *ctx);
void tg_set_save_hook(tg_save_hook_fn fn, void *ctx);

/* A process-wide hook called right after every tape entry is recorded (by a
 * built-in op or tg_custom_record): e is complete except for its saved
 * tensors, e->out holds the computed output.  A non-TG_OK return (with the
 * error set) makes the op fail: it returns NULL and the entry dies with its
 * output.  The binding uses it for anomaly mode (remember the creating
 * Python line in e->user_data, check the output for NaN/Inf) and profiling.
 * NULL removes it; when none is set recording costs nothing extra. */
typedef tg_status (*tg_record_hook_fn)(tg_entry *e, void *ctx);
void tg_set_record_hook(tg_record_hook_fn fn, void *ctx);

/* Around long kernels (large matmuls and elementwise loops) the library
 * calls leave() before and enter(token) after, so that an embedding can let
 * other threads run meanwhile (the Python binding releases the GIL there).
 * Kernels touch only the memory of their operands, never reference counts.
 * NULL functions (the default) do nothing. */
typedef void *(*tg_kernel_leave_fn)(void);
typedef void (*tg_kernel_enter_fn)(void *token);
void tg_set_kernel_bracket(tg_kernel_leave_fn leave, tg_kernel_enter_fn enter);
/* Elements (or multiply-adds) above which a kernel is bracketed. */
#define TG_BRACKET_MIN_WORK 65536

/* Kernel paths.  The matmul kernels ("gemm": "avx512", "avx2", "generic")
 * and the vector math and reductions ("vmath": "avx2", "baseline") each
 * have SIMD paths and a portable C one.  The first use of a family picks
 * the best path the CPU can run (or the one TAPEGRAD_GEMM / TAPEGRAD_VMATH
 * names) and, before using a SIMD path, runs a known-answer self-test
 * against the portable one; a path that fails is not used and the next one
 * is tried.  Thread-safe; once per process.
 *
 * tg_kernel_path: the path in use ("avx2", ...; static string), or NULL
 *   (TG_ERR_VALUE) for an unknown family.  Makes the choice if needed.
 * tg_kernel_report: what went wrong while choosing -- a self-test that
 *   failed (and what differed), a forced path that was refused -- one line
 *   each, "" if nothing; copied into buf[0..size) like snprintf (returns the
 *   full length).
 * tg_kernel_force: use `path` for `family` from now on (NULL path: the
 *   default choice again).  TG_ERR_VALUE for an unknown family or path,
 *   TG_ERR_RUNTIME if this CPU cannot run it or it failed its self-test
 *   (the message says which); the choice is then unchanged.  For tests and
 *   benchmarks: do not call while other threads run kernels. */
const char *tg_kernel_path(const char *family);
size_t tg_kernel_report(char *buf, size_t size);
tg_status tg_kernel_force(const char *family, const char *path);

/* ===================================================================== */
/* Ops.  Each returns a NEW reference or NULL with the error set.         */
/* Float ops accept float32 and float64 (int64 where stated).             */
/* ===================================================================== */

/* Binary, NumPy broadcasting, dtype promotion. */
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);      /* int64/int64 -> float64 */
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_maximum(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_minimum(tg_tensor *a, tg_tensor *b);
/* Comparisons: not differentiable; the result has the promoted dtype
 * holding 0 or 1 (there is no bool dtype). */
tg_tensor *tg_eq(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_ne(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_lt(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_le(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_gt(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_ge(tg_tensor *a, tg_tensor *b);
/* where(cond != 0, a, b), broadcasting all three. */
tg_tensor *tg_where(tg_tensor *cond, tg_tensor *a, tg_tensor *b);
/* Scalar forms (the scalar takes the tensor's dtype, NumPy 2's rule for
 * Python scalars; an int64 tensor with a non-integer scalar gives float64). */
tg_tensor *tg_add_scalar(tg_tensor *a, double s);
tg_tensor *tg_mul_scalar(tg_tensor *a, double s);
tg_tensor *tg_pow_scalar(tg_tensor *a, double s);
tg_tensor *tg_rsub_scalar(tg_tensor *a, double s); /* s - a */

/* Unary. */
tg_tensor *tg_neg(tg_tensor *x);
tg_tensor *tg_exp(tg_tensor *x);
tg_tensor *tg_log(tg_tensor *x);
tg_tensor *tg_sqrt(tg_tensor *x);
tg_tensor *tg_abs(tg_tensor *x);
tg_tensor *tg_sin(tg_tensor *x);
tg_tensor *tg_cos(tg_tensor *x);
tg_tensor *tg_tanh(tg_tensor *x);
tg_tensor *tg_sigmoid(tg_tensor *x);
tg_tensor *tg_silu(tg_tensor *x); /* composite: x * sigmoid(x) */
tg_tensor *tg_relu(tg_tensor *x);
tg_tensor *tg_leaky_relu(tg_tensor *x, double negative_slope);
tg_tensor *tg_gelu(tg_tensor *x);       /* exact: x * Phi(x) */
tg_tensor *tg_erf(tg_tensor *x);
tg_tensor *tg_softplus(tg_tensor *x);   /* log(1 + exp(x)), stable */
tg_tensor *tg_clip(tg_tensor *x, double lo, double hi); /* NaN bound = none */
tg_tensor *tg_cast(tg_tensor *x, tg_dtype dt); /* differentiable between floats */

/* Reductions.  axes == NULL: over all axes; otherwise naxes axes, each in
 * [-ndim, ndim), no repeats. */
tg_tensor *tg_sum(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
tg_tensor *tg_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
tg_tensor *tg_max(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
tg_tensor *tg_min(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
tg_tensor *tg_var(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims,
                  int64_t ddof);
tg_tensor *tg_logsumexp(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
/* Index of the max/min along one axis (axis < -ndim means over the
 * flattened tensor); int64 result, not differentiable. */
tg_tensor *tg_argmax(tg_tensor *x, int64_t axis, bool keepdims);
tg_tensor *tg_argmin(tg_tensor *x, int64_t axis, bool keepdims);
#define TG_AXIS_NONE INT64_MIN

/* Matmul with NumPy semantics (1-D, 2-D, batched N-D with broadcast batch). */
tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b);
/* A product with a triangle in the last two dims (both operands >= 2-D):
 * mode 0 tril(a @ b), 1 triu(a @ b), 2 tril(a) @ b, 3 triu(a) @ b; entries
 * outside tril(a)/triu(a) are taken as 0, whatever they hold.  The GEMM
 * skips what the triangle drops (causal attention's products). */
tg_tensor *tg_tri_matmul(tg_tensor *a, tg_tensor *b, int64_t mode);
/* nn.Linear's affine map y = x W^T + b: x (..., in), w (out, in), b (out,)
 * or NULL; y (..., out).  One tape entry; the weight gradient comes out in
 * w's (out, in) layout. */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b);

/* Movement.  Views where NumPy would give a view. */
tg_tensor *tg_reshape(tg_tensor *x, int ndim, const int64_t *shape); /* one -1 allowed */
tg_tensor *tg_permute(tg_tensor *x, const int64_t *axes);            /* x->ndim axes */
tg_tensor *tg_transpose(tg_tensor *x, int64_t a, int64_t b);         /* swap two axes */
tg_tensor *tg_broadcast_to(tg_tensor *x, int ndim, const int64_t *shape);
tg_tensor *tg_squeeze(tg_tensor *x, const int64_t *axes, int naxes); /* NULL: all size-1 */
tg_tensor *tg_unsqueeze(tg_tensor *x, int64_t axis);
tg_tensor *tg_flatten(tg_tensor *x, int64_t start_axis, int64_t end_axis);
tg_tensor *tg_contiguous(tg_tensor *x);  /* new reference to x if already contiguous */
/* Basic slicing: for each of x's dims, start, stop, step (step != 0, any
 * sign, Python's clamping rules already applied by the caller or not: the
 * values are normalised like slice.indices()).  index_mask bit d set: dim d
 * is indexed by the integer starts[d] and removed.  A view. */
tg_tensor *tg_slice(tg_tensor *x, const int64_t *starts, const int64_t *stops,
                    const int64_t *steps, uint32_t index_mask);
/* out = x.shape[:axis] + index.shape + x.shape[axis+1:], picking x along axis
 * (int64 indices, negative counted from the end). */
tg_tensor *tg_index_select(tg_tensor *x, int64_t axis, tg_tensor *index);
/* torch.gather / numpy.take_along_axis: index has x's ndim. */
tg_tensor *tg_gather(tg_tensor *x, int64_t axis, tg_tensor *index);
tg_tensor *tg_concat(int n, tg_tensor *const *xs, int64_t axis);
tg_tensor *tg_stack(int n, tg_tensor *const *xs, int64_t axis);
/* pads[2*d], pads[2*d+1]: before/after dim d; constant value. */
tg_tensor *tg_pad(tg_tensor *x, const int64_t *pads, double value);
/* Sum x down to `shape` (the shape it was broadcast from): the one place
 * where broadcasting is undone in backward. */
tg_tensor *tg_sum_to_shape(tg_tensor *x, int ndim, const int64_t *shape);

/* Network functions. */
tg_tensor *tg_softmax(tg_tensor *x, int64_t axis);
tg_tensor *tg_log_softmax(tg_tensor *x, int64_t axis);
/* The softmax of x's last axis over the kept entries, 0 at the others:
 * mask (any dtype, nonzero keeps; broadcast to x) or NULL, and/or causal
 * (key j <= query i of the last two dims).  A row with nothing kept (or
 * only -inf) is 0, as in PyTorch's scaled_dot_product_attention. */
tg_tensor *tg_masked_softmax(tg_tensor *x, tg_tensor *mask, bool causal);
typedef enum { TG_REDUCTION_NONE = 0, TG_REDUCTION_MEAN = 1, TG_REDUCTION_SUM = 2 } tg_reduction;
/* logits (N, C) or (C,), labels int64 (N,) / () in [0, C). */
tg_tensor *tg_cross_entropy(tg_tensor *logits, tg_tensor *labels, tg_reduction red);
tg_tensor *tg_nll_loss(tg_tensor *logp, tg_tensor *labels, tg_reduction red);
tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction red);
tg_tensor *tg_bce_with_logits(tg_tensor *logits, tg_tensor *target, tg_reduction red);
/* num_classes -1 infers it from the labels (max + 1); below -1 is refused. */
tg_tensor *tg_one_hot(tg_tensor *labels, int64_t num_classes, tg_dtype dt);
/* Inverted dropout: zero with probability p, scale the rest by 1/(1-p). */
tg_tensor *tg_dropout(tg_tensor *x, double p, bool training);

/* Convolution and pooling (csrc/ops/conv.c).  NCHW layout and PyTorch's
 * semantics: cross-correlation, zero padding, output size
 *     OH = (H + 2*pad_h - KH) / stride_h + 1   (rounded down; same for OW)
 * for these four-number entry points; the _ex versions (further down, with
 * the issue-14 ops) add dilation, groups and per-side padding.  Each returns a NEW reference or NULL with the
 * error set; inputs are borrowed and may be any layout (views are copied to
 * contiguous memory first).  Float dtypes only (int64 -> TG_ERR_TYPE); mixed
 * float32/float64 operands compute in float64.  TG_ERR_VALUE for: a tensor
 * that is not 4-D, a channel mismatch, a bias that is not (O,), a stride
 * <= 0, a padding < 0, a kernel larger than the padded input. */

/* y = conv2d(x, w) + bias: x (N, C, H, W), w (O, C, KH, KW), bias (O,) or
 * NULL -> y (N, O, OH, OW).  Computed as w (O, C*KH*KW) @ im2col(x_n)
 * with the packed GEMM, several images per product, images in parallel.  Differentiable in
 * x, w and bias, to any order (the VJPs are the two ops below). */
tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, int64_t stride_h,
                     int64_t stride_w, int64_t pad_h, int64_t pad_w);
/* The gradient of conv2d with respect to its input (a transposed
 * convolution): dy (N, O, OH, OW), w (O, C, KH, KW), x_shape = the 4 sizes
 * of the convolution's input (N, C, H, W) -> dx of shape x_shape.  dy must
 * have the shape conv2d would produce for x_shape (TG_ERR_VALUE otherwise).
 * Differentiable in dy and w. */
tg_tensor *tg_conv2d_input_grad(tg_tensor *dy, tg_tensor *w, const int64_t *x_shape,
                                int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                int64_t pad_w);
/* The gradient of conv2d with respect to its weight: x (N, C, H, W), dy
 * (N, O, OH, OW), w_shape = (O, C, KH, KW) -> dw of shape w_shape (summed
 * over the images).  Differentiable in x and dy. */
tg_tensor *tg_conv2d_weight_grad(tg_tensor *x, tg_tensor *dy, const int64_t *w_shape,
                                 int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                 int64_t pad_w);
/* Max pooling: x (N, C, H, W) -> (N, C, OH, OW), the maximum of each
 * kernel_h x kernel_w window, padding counted as -inf.  The gradient goes to
 * the first maximum of each window (a NaN counts as the maximum).  Like
 * PyTorch, the padding must be at most half the kernel size and H, W >= 1
 * (TG_ERR_VALUE otherwise).  (PyTorch's default stride is the kernel size;
 * here the caller passes it.) */
tg_tensor *tg_max_pool2d(tg_tensor *x, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                         int64_t stride_w, int64_t pad_h, int64_t pad_w);
/* Average pooling, same shapes and checks: each window's sum divided by
 * kernel_h * kernel_w, padding counted as zeros (PyTorch's default
 * count_include_pad=True). */
tg_tensor *tg_avg_pool2d(tg_tensor *x, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                         int64_t stride_w, int64_t pad_h, int64_t pad_w);

/* ===================================================================== */
/* Ops added by issue 14 and 19, one section per family                   */
/* ===================================================================== */
/* -- logic.c: bool/bitwise/logical ops and predicates (issue 14, dtypes) -- */
/* None is differentiable; the outputs are bool (or the integer dtype of the
 * inputs for the bitwise ops) and never require grad. */
tg_tensor *tg_logical_and(tg_tensor *a, tg_tensor *b); /* any dtypes: nonzero is true */
tg_tensor *tg_logical_or(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_logical_xor(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_logical_not(tg_tensor *x);
tg_tensor *tg_bitwise_and(tg_tensor *a, tg_tensor *b); /* int64/int32/uint8/bool */
tg_tensor *tg_bitwise_or(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_bitwise_xor(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_bitwise_not(tg_tensor *x);
tg_tensor *tg_left_shift(tg_tensor *a, tg_tensor *b);  /* int64/int32/uint8 */
tg_tensor *tg_right_shift(tg_tensor *a, tg_tensor *b); /* arithmetic for signed */
tg_tensor *tg_isnan(tg_tensor *x);
tg_tensor *tg_isinf(tg_tensor *x);
tg_tensor *tg_isfinite(tg_tensor *x);
/* |a - b| <= atol + rtol * |b| (NumPy's isclose); rtol, atol >= 0. */
tg_tensor *tg_isclose(tg_tensor *a, tg_tensor *b, double rtol, double atol, bool equal_nan);
tg_tensor *tg_all(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
tg_tensor *tg_any(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);

/* -- math.c: elementwise math (issue 14) -- */
/* elementwise, float32/float64 (int64 -> float64) unless noted; csrc/ops/elementwise.c */
tg_tensor *tg_tan(tg_tensor *x);
tg_tensor *tg_asin(tg_tensor *x);
tg_tensor *tg_acos(tg_tensor *x);
tg_tensor *tg_atan(tg_tensor *x);
tg_tensor *tg_sinh(tg_tensor *x);
tg_tensor *tg_cosh(tg_tensor *x);
tg_tensor *tg_asinh(tg_tensor *x);
tg_tensor *tg_acosh(tg_tensor *x);
tg_tensor *tg_atanh(tg_tensor *x);
tg_tensor *tg_log2(tg_tensor *x);
tg_tensor *tg_log10(tg_tensor *x);
tg_tensor *tg_log1p(tg_tensor *x);
tg_tensor *tg_expm1(tg_tensor *x);
tg_tensor *tg_exp2(tg_tensor *x);
tg_tensor *tg_rsqrt(tg_tensor *x);
tg_tensor *tg_reciprocal(tg_tensor *x);
tg_tensor *tg_square(tg_tensor *x);
tg_tensor *tg_floor(tg_tensor *x);
tg_tensor *tg_ceil(tg_tensor *x);
tg_tensor *tg_trunc(tg_tensor *x);
tg_tensor *tg_sign(tg_tensor *x);
/* round half to even at `decimals` places (negative: tens, hundreds, ...) */
tg_tensor *tg_round(tg_tensor *x, int decimals);
tg_tensor *tg_atan2(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_copysign(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_logaddexp(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_hypot(tg_tensor *a, tg_tensor *b);
/* remainders and divisions: fmod/trunc_divide truncate (the sign of a), remainder/
 * floor_divide floor (the sign of b, Python's % and //); integer x / 0 gives 0 (NumPy) */
tg_tensor *tg_fmod(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_remainder(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_floor_divide(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_trunc_divide(tg_tensor *a, tg_tensor *b);
/* a + w * (b - a), w broadcast (a composite op) */
tg_tensor *tg_lerp(tg_tensor *a, tg_tensor *b, tg_tensor *w);
/* NaN -> nan, +inf -> posinf, -inf -> neginf; posinf/neginf NaN: the dtype's largest/lowest */
tg_tensor *tg_nan_to_num(tg_tensor *x, double nan, double posinf, double neginf);

/* -- activation.c: activations (issue 14) -- */
/* float32/float64; csrc/ops/elementwise.c (PyTorch's definitions and gradients) */
tg_tensor *tg_elu(tg_tensor *x, double alpha);
tg_tensor *tg_selu(tg_tensor *x);
tg_tensor *tg_celu(tg_tensor *x, double alpha); /* alpha != 0 */
tg_tensor *tg_hardtanh(tg_tensor *x, double min_val, double max_val); /* min_val <= max_val */
tg_tensor *tg_relu6(tg_tensor *x);
tg_tensor *tg_hardsigmoid(tg_tensor *x);
tg_tensor *tg_hardswish(tg_tensor *x);
tg_tensor *tg_logsigmoid(tg_tensor *x);
tg_tensor *tg_softsign(tg_tensor *x);
tg_tensor *tg_mish(tg_tensor *x);
tg_tensor *tg_gelu_tanh(tg_tensor *x); /* gelu's tanh approximation */
/* x where beta x > threshold, else log(1 + exp(beta x)) / beta; beta != 0 */
tg_tensor *tg_softplus_beta(tg_tensor *x, double beta, double threshold);
tg_tensor *tg_softmin(tg_tensor *x, int64_t axis);
/* first half of x along axis times the sigmoid of the second half */
tg_tensor *tg_glu(tg_tensor *x, int64_t axis);

/* -- scan.c: reductions, scans, sorting (issue 14) -- */
/* Scans along one axis (0 or -1 for a 0-d tensor); `reverse` scans from the
 * end (the VJP of a scan is the reversed scan).  cumsum and cumprod take
 * int64 too (wrapping like NumPy); logcumsumexp is computed stably. */
tg_tensor *tg_cumsum(tg_tensor *x, int64_t axis, bool reverse);
tg_tensor *tg_cumprod(tg_tensor *x, int64_t axis, bool reverse);
tg_tensor *tg_logcumsumexp(tg_tensor *x, int64_t axis, bool reverse);
/* Product over axes (like tg_sum); the gradient is right with zeros. */
tg_tensor *tg_prod(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims);
/* Ops returning values and int64 indices: the values are a NEW reference
 * (taken from x with tg_gather, so the gradient flows through the indices)
 * and *indices receives a NEW reference (NULL on failure).
 * cummax/cummin: PyTorch's rule (ties take the later index; a NaN takes
 * over and propagates).  sort: stable; NaN sorts last (first when
 * descending).  topk: the k largest (or smallest) in sorted order, ties
 * broken by the lower index.  median: the lower median (PyTorch's), NaN if
 * the row has a NaN; axis == TG_AXIS_NONE takes the median of all elements
 * (indices may be NULL). */
tg_tensor *tg_cummax(tg_tensor *x, int64_t axis, tg_tensor **indices);
tg_tensor *tg_cummin(tg_tensor *x, int64_t axis, tg_tensor **indices);
tg_tensor *tg_sort(tg_tensor *x, int64_t axis, bool descending, tg_tensor **indices);
tg_tensor *tg_argsort(tg_tensor *x, int64_t axis, bool descending);
tg_tensor *tg_topk(tg_tensor *x, int64_t k, int64_t axis, bool largest, tg_tensor **indices);
tg_tensor *tg_median(tg_tensor *x, int64_t axis, bool keepdims, tg_tensor **indices);
/* sqrt(var); var or std together with the mean (*mean: a NEW reference). */
tg_tensor *tg_std(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof);
tg_tensor *tg_var_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof,
                       tg_tensor **mean);
tg_tensor *tg_std_mean(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims, int64_t ddof,
                       tg_tensor **mean);
/* Vector p-norm over axes: p > 0, INFINITY, -INFINITY or 0 (the count of
 * non-zeros); float dtypes only. */
tg_tensor *tg_norm(tg_tensor *x, double p, const int64_t *axes, int naxes, bool keepdims);

/* -- shape.c: shape and indexing (issue 14) -- */
/* Reverse along axes (naxes < 0: all); a view. */
tg_tensor *tg_flip(tg_tensor *x, const int64_t *axes, int naxes);
/* Rotate by shifts[i] along axes[i]; naxes < 0: the flattened tensor by shifts[0]. */
tg_tensor *tg_roll(tg_tensor *x, const int64_t *shifts, const int64_t *axes, int naxes);
/* Lower / upper triangle of the last two dims from diagonal k (zeros elsewhere). */
tg_tensor *tg_tril(tg_tensor *x, int64_t k);
tg_tensor *tg_triu(tg_tensor *x, int64_t k);
/* The diagonal (offset) of axes axis1, axis2, as the last axis (a view). */
tg_tensor *tg_diagonal(tg_tensor *x, int64_t offset, int64_t axis1, int64_t axis2);
/* NumPy's diag: 1-D -> matrix with x on diagonal k; 2-D -> its diagonal k. */
tg_tensor *tg_diag(tg_tensor *x, int64_t k);
/* Sum of the diagonal (offset) of axes axis1, axis2. */
tg_tensor *tg_trace(tg_tensor *x, int64_t offset, int64_t axis1, int64_t axis2);
/* PyTorch's Tensor.repeat (nreps >= x->ndim) and NumPy's tile. */
tg_tensor *tg_repeat(tg_tensor *x, const int64_t *reps, int nreps);
tg_tensor *tg_tile(tg_tensor *x, const int64_t *reps, int nreps);
/* Repeat each element (slice along axis if has_axis, else of the flattened
 * tensor) repeats[j] times; nrep == 1: the same count for all. */
tg_tensor *tg_repeat_interleave(tg_tensor *x, const int64_t *repeats, int64_t nrep, int64_t axis,
                                bool has_axis);
/* Split axis into sizes (one may be -1): a reshape. */
tg_tensor *tg_unflatten(tg_tensor *x, int64_t axis, int nsizes, const int64_t *sizes);
/* int64 (count, ndim): indices of the non-zero elements (any dtype). */
tg_tensor *tg_nonzero(tg_tensor *x);
/* x[mask] (broadcast together) as 1-D; mask: non-zero = true, any dtype. */
tg_tensor *tg_masked_select(tg_tensor *x, tg_tensor *mask);
/* x with value where mask (broadcast to x) is non-zero; out of place. */
tg_tensor *tg_masked_fill(tg_tensor *x, tg_tensor *mask, double value);
/* A copy of x with src (or value) written at index along axis (PyTorch's scatter). */
tg_tensor *tg_scatter(tg_tensor *x, int64_t axis, tg_tensor *index, tg_tensor *src);
tg_tensor *tg_scatter_value(tg_tensor *x, int64_t axis, tg_tensor *index, double value);
/* PyTorch's scatter_reduce, out of place: reduce = tg_scatter_reduce_code("sum" | "prod" |
 * "mean" | "amax" | "amin") (-1 for another name). */
int tg_scatter_reduce_code(const char *name);
tg_tensor *tg_scatter_reduce(tg_tensor *x, int64_t axis, tg_tensor *index, tg_tensor *src, int reduce,
                             bool include_self);
/* Einstein summation over n operands ("ij,jk->ik", implicit output, "...",
 * repeated labels as diagonals); contractions run as matmul. */
tg_tensor *tg_einsum(const char *subscripts, int n, tg_tensor *const *xs);
/* Sliding windows (PyTorch's Tensor.unfold): axis -> (n - size) / step + 1
 * windows, a new last axis of size. */
tg_tensor *tg_unfold(tg_tensor *x, int64_t axis, int64_t size, int64_t step);
/* pad with (before, after) widths per dim that may be negative (cropping) and a
 * mode = tg_pad_mode_code("constant" | "reflect" | "replicate" | "circular" |
 * "symmetric", or NumPy's "edge" | "wrap"); value for constant. */
int tg_pad_mode_code(const char *name);
tg_tensor *tg_pad_mode(tg_tensor *x, const int64_t *pads, int mode, double value);

/* -- conv.c: more convolutions, pooling, interpolation (issue 14) -- */
/* The general convolution.  cv holds 9 parameters, in this order: stride
 * (h, w), padding top, left, dilation (h, w), groups, padding bottom,
 * right.  Weights are (O, C/groups, KH, KW) and
 *     OH = (H + pad_top + pad_bottom - dilation_h*(KH-1) - 1) / stride_h + 1.
 * tg_conv2d and its two gradients above are these with dilation 1, groups 1
 * and the same padding on both sides. */
tg_tensor *tg_conv2d_ex(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const int64_t *cv);
tg_tensor *tg_conv2d_input_grad_ex(tg_tensor *dy, tg_tensor *w, const int64_t *x_shape,
                                   const int64_t *cv);
tg_tensor *tg_conv2d_weight_grad_ex(tg_tensor *x, tg_tensor *dy, const int64_t *w_shape,
                                    const int64_t *cv);
/* Pooling with all of PyTorch's options.  pp holds 11 parameters: kernel
 * (h, w), stride (h, w), padding (h, w), dilation (h, w) (1 for average
 * pooling), ceil_mode, count_include_pad, divisor_override (0: none; the
 * last two matter to average pooling only).  indices non-NULL: *indices =
 * a new int64 tensor of the flat positions h*W + w of the maxima (PyTorch's
 * return_indices). */
tg_tensor *tg_max_pool2d_ex(tg_tensor *x, const int64_t *pp, tg_tensor **indices);
tg_tensor *tg_avg_pool2d_ex(tg_tensor *x, const int64_t *pp);
/* max_unpool2d: x (N, C, h, w) scattered to the flat positions indices of
 * zero (N, C, OH, OW) planes; kp: kernel, stride, padding as pp's first six;
 * out_hw: the output (OH, OW) or NULL for (h-1)*stride - 2*padding + kernel.
 * A composite (its entry is max_pool2d_backward); repeated indices add. */
tg_tensor *tg_max_unpool2d(tg_tensor *x, tg_tensor *indices, const int64_t *kp,
                           const int64_t *out_hw);
/* Composites.  conv1d: x (N, C, L), w (O, C/groups, K); c1 = stride, padding
 * left, dilation, groups, padding right.  conv_transpose2d: x (N, Cin, H, W),
 * w (Cin, Cout/groups, KH, KW); ct = stride (h, w), padding (h, w),
 * output_padding (h, w) (each below the stride), groups, dilation (h, w).
 * interpolate: x (N, C, L) or (N, C, H, W) to size (ndim - 2 sizes); mode 0
 * nearest, 1 linear (3-D), 2 bilinear (4-D), 3 nearest-exact; scales NULL or ndim - 2 scale
 * factors for the source indices (0: in/out), PyTorch's index rules.
 * adaptive_avg_pool2d: PyTorch's adaptive windows, (N, C, oh, ow). */
tg_tensor *tg_conv1d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const int64_t *c1);
tg_tensor *tg_conv_transpose2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const int64_t *ct);
tg_tensor *tg_interpolate(tg_tensor *x, const int64_t *size, const double *scales, int mode,
                          bool align_corners);
tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t oh, int64_t ow);

/* -- nn.c: normalization, attention, embedding, losses (issue 14) -- */
/* csrc/ops/nn.c (its second part): composites of other ops (layer_norm: fused).  The _ex losses take
 * PyTorch's options (weight and pos_weight may be NULL; ignore_index -100
 * is PyTorch's default) and run the fused op of nn.c for the plain case. */
tg_tensor *tg_cross_entropy_ex(tg_tensor *logits, tg_tensor *target, tg_tensor *weight,
                               int64_t ignore_index, double label_smoothing, tg_reduction red);
tg_tensor *tg_nll_loss_ex(tg_tensor *logp, tg_tensor *labels, tg_tensor *weight,
                          int64_t ignore_index, tg_reduction red);
tg_tensor *tg_bce_with_logits_ex(tg_tensor *logits, tg_tensor *target, tg_tensor *weight,
                                 tg_tensor *pos_weight, tg_reduction red);
tg_tensor *tg_binary_cross_entropy(tg_tensor *p, tg_tensor *target, tg_tensor *weight,
                                   tg_reduction red);
tg_tensor *tg_huber_loss(tg_tensor *x, tg_tensor *target, double delta, tg_reduction red);
tg_tensor *tg_smooth_l1_loss(tg_tensor *x, tg_tensor *target, double beta, tg_reduction red);
tg_tensor *tg_l1_loss(tg_tensor *x, tg_tensor *target, tg_reduction red);
/* reduction: the tg_reduction values, or 3 for 'batchmean' */
tg_tensor *tg_kl_div(tg_tensor *x, tg_tensor *target, int reduction, bool log_target);
tg_tensor *tg_embedding(tg_tensor *weight, tg_tensor *indices, bool has_padding_idx,
                        int64_t padding_idx);
tg_tensor *tg_layer_norm(tg_tensor *x, int nd, const int64_t *normalized_shape, tg_tensor *weight,
                         tg_tensor *bias, double eps);
tg_tensor *tg_group_norm(tg_tensor *x, int64_t num_groups, tg_tensor *weight, tg_tensor *bias,
                         double eps);
tg_tensor *tg_normalize(tg_tensor *x, double p, int64_t axis, double eps);
tg_tensor *tg_cosine_similarity(tg_tensor *a, tg_tensor *b, int64_t axis, double eps);
/* mask NULL, float (added) or any other dtype (keep where nonzero); scale
 * NaN for 1/sqrt(E) */
tg_tensor *tg_scaled_dot_product_attention(tg_tensor *q, tg_tensor *k, tg_tensor *v,
                                           tg_tensor *mask, double dropout_p, bool is_causal,
                                           double scale);

/* -- inplace.c: in-place ops on the tape (issue 14) -- */
/* In-place writes recorded on the tape, with PyTorch's rules.  With grad mode
 * on, the new value is computed out of place from a snapshot of the old one
 * (so that what the op saves is never overwritten), written into the
 * tensor's memory, and the tensor's grad_fn is rebased onto the new entry
 * (marked with entry->inplace = name).  A write into a view of a tensor in
 * the graph (made by slicing, reshape or permute) rebases the base too: its
 * new grad_fn is a copy_slices entry (base with the view's region replaced)
 * and the view's an as_strided entry reading that region back.  Refused
 * (TG_ERR_RUNTIME) on a leaf that requires grad (or a view of one) while
 * grad mode is on; under no_grad nothing is recorded (optimizers).  Every
 * write bumps the storage version, so that an entry that saved the old
 * memory raises at backward.  `f` computes the new value from the old one
 * (a borrowed tensor) and returns a NEW reference of the same shape. */
typedef tg_tensor *(*tg_inplace_fn)(tg_tensor *old, void *ctx);
/* Rebasing makes a NEW tensor object for the new version (the old object
 * keeps its history: entries recorded earlier took it as an input).  The
 * name, hooks, retain_grad and user_data move to the new object, and the
 * rebase hook is called with (old, new) so that the owner of the handle
 * can switch to the new object (the Python binding does this: `x` stays the
 * same Python object).  Without a hook, a C caller's pointer goes on naming
 * the OLD version (its values are the new ones, its history the old one):
 * C code that writes tensors in the graph installs a hook that moves its
 * handles (tests/c/test_inplace.c has one).  The hook receives borrowed
 * pointers; the new object is kept alive by the write until the hook
 * returns, so a handle must retain it. */
typedef void (*tg_rebase_hook_fn)(tg_tensor *old_version, tg_tensor *new_version);
void tg_set_rebase_hook(tg_rebase_hook_fn fn);
tg_status tg_inplace_apply(tg_tensor *dst, const char *name, tg_inplace_fn f, void *ctx);
/* The same for the region `view` of `base` (a view over base's storage, as
 * base[key] makes it): base is rebased even when it was not in the graph
 * (buf[0:3] = x makes buf part of the graph). */
tg_status tg_inplace_write(tg_tensor *base, tg_tensor *view, const char *name, tg_inplace_fn f,
                           void *ctx);
/* The in-place ops (each returns TG_OK or a failure status with the error set):
 * dst += alpha * src, dst -= alpha * src, dst *= src, dst /= src,
 * dst = relu(dst), dst = clip(dst, lo, hi) (NaN bound = none),
 * dst = where(mask != 0, value, dst) (mask of any dtype, broadcast),
 * dst = src (broadcast; copy_), dst = value (fill_/zero_). */
tg_status tg_add_(tg_tensor *dst, tg_tensor *src, double alpha);
tg_status tg_sub_(tg_tensor *dst, tg_tensor *src, double alpha);
tg_status tg_mul_(tg_tensor *dst, tg_tensor *src);
tg_status tg_div_(tg_tensor *dst, tg_tensor *src);
tg_status tg_relu_(tg_tensor *dst);
tg_status tg_clip_(tg_tensor *dst, double lo, double hi);
tg_status tg_masked_fill_(tg_tensor *dst, tg_tensor *mask, tg_tensor *value);
tg_status tg_assign_(tg_tensor *dst, tg_tensor *src);
tg_status tg_fill_value_(tg_tensor *dst, double value);
/* x[view] = src for a view of x's storage (setitem with a basic index), and
 * x[mask] = src (mask broadcast to x, nonzero = true). */
tg_status tg_setitem_(tg_tensor *x, tg_tensor *view, tg_tensor *src);
tg_status tg_setitem_mask_(tg_tensor *x, tg_tensor *mask, tg_tensor *src);
/* The name of the in-place write that recorded e, or NULL. */
const char *tg_entry_inplace(const tg_entry *e);

/* -- npfn: products and NumPy functions (issue 19) -- */
/* npfuncs.c: composites (made of permute, reshape, matmul, slice, mul, sub,
 * where, ...).  tensordot sums over the n axis pairs (axes_a[i], axes_b[i]);
 * dot is NumPy's (the last axis of a with the second-to-last of b; a 0-d
 * operand multiplies); inner sums over the last axes; outer flattens both;
 * kron pads the shorter shape with leading 1s (at most 4 dims); cross works
 * along `axis` (size 3) after broadcasting; diff takes prepend/append (or
 * NULL), a 0-d one broadcast to x's shape with size 1 along the axis.
 * fmax/fmin ignore NaN (ties: a); sinc is NumPy's normalised one. */
tg_tensor *tg_tensordot(tg_tensor *a, tg_tensor *b, const int64_t *axes_a, const int64_t *axes_b, int n);
tg_tensor *tg_dot(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_inner(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_outer(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_kron(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_cross(tg_tensor *a, tg_tensor *b, int64_t axis);
tg_tensor *tg_diff(tg_tensor *x, int64_t n, int64_t axis, tg_tensor *prepend, tg_tensor *append);
tg_tensor *tg_fmax(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_fmin(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_logaddexp2(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sinc(tg_tensor *x);
tg_tensor *tg_deg2rad(tg_tensor *x);
tg_tensor *tg_rad2deg(tg_tensor *x);

/* -- linalg.c: tg.linalg and more products (issue 19) -- */
/* decomp.c: batched over leading dims (..., n, n), float32/float64 computed
 * in double; bound in Python as tg.linalg.* (see decomp.c for the packed
 * two-result ops).  Singular / not positive definite: TG_ERR_VALUE. */
tg_tensor *tg_linalg_inv(tg_tensor *a);
tg_tensor *tg_linalg_solve(tg_tensor *a, tg_tensor *b); /* b (..., n, k), same batch dims */
tg_tensor *tg_linalg_det(tg_tensor *a);
tg_tensor *tg_linalg_slogdet(tg_tensor *a);  /* (..., 2): sign, log|det| */
tg_tensor *tg_linalg_cholesky(tg_tensor *a); /* lower L, A = L L^T */
tg_tensor *tg_linalg_eigh(tg_tensor *a);     /* (..., n, n+1): [V | w], w ascending */
/* (..., m, n) matrices, any m and n, k = min(m, n).  qr: packed [Q | R],
 * (..., m, qc + n) with qc = k (complete 0) or m (complete 1), R's missing
 * rows zero.  svd: packed [[U, s], [V, 0]], (..., m + n, c + 1) with U in
 * rows :m, V (not V^T) in rows m:, s in the last column; c = k (full 0) or
 * max(m, n) (full 1, U m x m and V n x n).  Non-finite input: all NaN. */
tg_tensor *tg_linalg_qr(tg_tensor *a, int complete);
tg_tensor *tg_linalg_svd(tg_tensor *a, int full);

/* ===================================================================== */
/* Optimizers (csrc/core/optim.c)                                         */
/* ===================================================================== */
/* Fused steps: one call updates n parameters in place with PyTorch's
 * formulas (torch.optim, maximize=False; the formulas are written out in
 * optim.c).  Not recorded on the tape, allowed on tensors that require
 * grad.  All tensors are borrowed.  params[i] and every state tensor must
 * be float, C-contiguous, writable and of params[i]'s shape and dtype;
 * grads[i] the same shape and dtype, any layout, or NULL to skip parameter
 * i (its state is then not touched either).  State tensors start as zeros
 * (created by the caller).  Each written tensor's storage version is bumped.
 * A tensor may appear once in params (twice is TG_ERR_VALUE: it would be
 * stepped twice).
 * Returns TG_OK, or TG_ERR_VALUE (bad shape, layout or hyper-parameter),
 * TG_ERR_TYPE, TG_ERR_RUNTIME (read-only) or TG_ERR_MEMORY, having checked
 * everything before writing anything: a failed call changes nothing. */

/* SGD with momentum, dampening, weight decay and Nesterov.  momentum_bufs
 * may be NULL when momentum == 0; first_step: the buffers are empty and get
 * the gradient itself (PyTorch's first step). */
tg_status tg_sgd_step(int n, tg_tensor **params, tg_tensor **grads,
                      tg_tensor **momentum_bufs, double lr, double momentum,
                      double dampening, double weight_decay, bool nesterov,
                      bool first_step);
/* Adam (decoupled = false: L2 weight decay added to the gradient) or AdamW
 * (decoupled = true: p *= 1 - lr * weight_decay).  step: the step count
 * after this update (1 on the first call), shared by the n parameters
 * (PyTorch counts per parameter, only the steps it had a gradient for: call
 * once per distinct count); no amsgrad. */
tg_status tg_adam_step(int n, tg_tensor **params, tg_tensor **grads, tg_tensor **exp_avg,
                       tg_tensor **exp_avg_sq, int64_t step, double lr, double beta1,
                       double beta2, double eps, double weight_decay, bool decoupled);
/* RMSprop (not centered).  momentum_buf may be NULL when momentum == 0. */
tg_status tg_rmsprop_step(int n, tg_tensor **params, tg_tensor **grads,
                          tg_tensor **square_avg, tg_tensor **momentum_buf, double lr,
                          double alpha, double eps, double weight_decay, double momentum);
/* Scale the gradients in place so that their total norm (norm_type = p > 0
 * or INFINITY, over all of them as one vector) is at most max_norm:
 * g *= max_norm / (total + 1e-6) when that factor is < 1.  grads[i] may be
 * NULL.  *total_norm_out (may be NULL) gets the norm before clipping. */
tg_status tg_clip_grad_norm(int n, tg_tensor **grads, double max_norm, double norm_type,
                            double *total_norm_out);

#ifdef __cplusplus
}
#endif
#endif /* TAPEGRAD_H */
