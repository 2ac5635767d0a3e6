/*
 * mlp.c -- train a small neural network with the tapegrad C API alone.
 *
 * The task: two interleaved half-moons in the plane, 2 classes, 200 points.
 * The model: a multi-layer perceptron 2 -> 16 -> 2,
 *
 *     h      = tanh(X W1 + b1)        X (N, 2), W1 (2, 16), b1 (16,)
 *     logits = h W2 + b2              W2 (16, 2), b2 (2,)
 *     loss   = cross_entropy(logits, labels), averaged over the N points
 *
 * trained by plain full-batch gradient descent: w <- w - lr * dloss/dw.
 *
 * What the lesson shows, in order:
 *   1. making tensors (from the library's seeded random generator, and from
 *      a C array) and marking the parameters with requires_grad;
 *   2. the forward pass: every op returns a NEW reference and records a tape
 *      entry because a parameter requires grad;
 *   3. tg_backward(loss): the tape is replayed backwards and each parameter's
 *      gradient lands in p->grad;
 *   4. the update, done IN PLACE under no-grad (tg_set_grad_enabled(false)),
 *      exactly what an optimizer does, then clearing the gradients;
 *   5. releasing every reference: the graph of one step is freed with the
 *      tensors that hold it, so memory stays flat however long we train.
 *
 * Build and run: make -C examples/c run (it builds the library first).
 * The program exits with status 1 unless the final loss is below a tenth
 * of the initial loss, so `make run` doubles as a test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad.h"

#ifndef M_PI /* not ISO C: glibc has it with _GNU_SOURCE, Windows does not */
#define M_PI 3.14159265358979323846
#endif

#define N_POINTS 200 /* half of them in each moon */
#define HIDDEN 16
#define STEPS 1000
#define LR 0.5
#define PRINT_EVERY 100

/* Print the library's last error and stop.  A real program would clean up;
 * an example that fails should just say why. */
static void die(const char *what) {
    fprintf(stderr, "mlp: %s failed: %s\n", what, tg_error_message());
    exit(2);
}

/* Every call below returns NULL (or a non-zero status) on failure with the
 * reason in tg_error_message(); check them all. */
static tg_tensor *ok(tg_tensor *t, const char *what) {
    if (!t) die(what);
    return t;
}

/* ------------------------------------------------------------------------
 * 1. Data: two moons, built with the library's random generator so that the
 *    run is the same on every machine (tg_manual_seed).
 * ------------------------------------------------------------------------ */
static void make_moons(tg_tensor **X_out, tg_tensor **y_out) {
    int64_t n = N_POINTS, half = N_POINTS / 2;
    /* an angle in [0, pi) for each point, and Gaussian noise for x and y */
    tg_tensor *angle = ok(tg_tensor_rand(1, &n, 0.0, M_PI, TG_FLOAT64), "rand");
    int64_t noise_shape[2] = {N_POINTS, 2};
    tg_tensor *noise = ok(tg_tensor_randn(2, noise_shape, 0.0, 0.1, TG_FLOAT64), "randn");
    /* The random tensors are fresh and contiguous, so their data can be read
     * directly as C arrays (tg_tensor_data points at element 0). */
    const double *a = tg_tensor_data(angle), *e = tg_tensor_data(noise);

    float xs[N_POINTS * 2];
    int64_t ys[N_POINTS];
    for (int64_t i = 0; i < n; i++) {
        double px, py;
        if (i < half) { /* upper moon, class 0 */
            px = cos(a[i]);
            py = sin(a[i]);
        } else {        /* lower moon, shifted to interleave: class 1 */
            px = 1.0 - cos(a[i]);
            py = 0.5 - sin(a[i]);
        }
        xs[2 * i] = (float)(px + e[2 * i]);
        xs[2 * i + 1] = (float)(py + e[2 * i + 1]);
        ys[i] = i < half ? 0 : 1;
    }
    /* tg_tensor_from_buffer COPIES the C arrays: the tensors own their memory */
    *X_out = ok(tg_tensor_from_buffer(2, noise_shape, TG_FLOAT32, xs), "from_buffer");
    *y_out = ok(tg_tensor_from_buffer(1, &n, TG_INT64, ys), "from_buffer"); /* labels: int64 */
    tg_tensor_release(angle);
    tg_tensor_release(noise);
}

/* ------------------------------------------------------------------------
 * The model's parameters: leaves that require grad.
 * ------------------------------------------------------------------------ */
typedef struct {
    tg_tensor *W1, *b1, *W2, *b2;
} mlp;

static tg_tensor *param(tg_tensor *t) {
    ok(t, "parameter");
    /* Only a leaf (a tensor no op produced) can be marked; from now on every
     * op that uses it records a tape entry. */
    if (tg_tensor_set_requires_grad(t, true) != TG_OK) die("set_requires_grad");
    return t;
}

static void mlp_init(mlp *m) {
    int64_t s1[2] = {2, HIDDEN}, s2[2] = {HIDDEN, 2}, h = HIDDEN, c = 2;
    /* weights ~ N(0, 1/fan_in) (LeCun init, good for tanh); biases 0 */
    m->W1 = param(tg_tensor_randn(2, s1, 0.0, 1.0 / sqrt(2.0), TG_FLOAT32));
    m->b1 = param(tg_tensor_zeros(1, &h, TG_FLOAT32));
    m->W2 = param(tg_tensor_randn(2, s2, 0.0, 1.0 / sqrt((double)HIDDEN), TG_FLOAT32));
    m->b2 = param(tg_tensor_zeros(1, &c, TG_FLOAT32));
}

/* ------------------------------------------------------------------------
 * 2. The forward pass.  Each op returns a NEW reference that we must release
 *    once.  Intermediates can be released as soon as the next op has used
 *    them: the op's tape entry keeps its own reference to what backward will
 *    need, so releasing our handle never breaks the graph.
 * ------------------------------------------------------------------------ */
static tg_tensor *mlp_forward(const mlp *m, tg_tensor *X) {
    tg_tensor *xw = ok(tg_matmul(X, m->W1), "matmul");  /* (N, 16) */
    tg_tensor *z1 = ok(tg_add(xw, m->b1), "add");       /* b1 (16,) broadcast over rows */
    tg_tensor_release(xw);
    tg_tensor *h = ok(tg_tanh(z1), "tanh");
    tg_tensor_release(z1);
    tg_tensor *hw = ok(tg_matmul(h, m->W2), "matmul");  /* (N, 2) */
    tg_tensor_release(h);
    tg_tensor *logits = ok(tg_add(hw, m->b2), "add");
    tg_tensor_release(hw);
    return logits; /* its grad_fn leads, entry by entry, back to the parameters */
}

/* Fraction of points whose largest logit is the right class (no autograd:
 * argmax is not differentiable and its result is int64). */
static double accuracy(tg_tensor *logits, tg_tensor *labels) {
    tg_tensor *pred = ok(tg_argmax(logits, 1, false), "argmax");
    int64_t right = 0, n = pred->numel;
    for (int64_t i = 0; i < n; i++)
        right += tg_tensor_get_flat(pred, i) == tg_tensor_get_flat(labels, i);
    tg_tensor_release(pred); /* after this, pred must not be touched */
    return (double)right / (double)n;
}

int main(void) {
    tg_manual_seed(0); /* the same numbers, the same run, everywhere */
    tg_tensor *X, *y;
    make_moons(&X, &y);
    mlp m;
    mlp_init(&m);
    tg_tensor *params[4] = {m.W1, m.b1, m.W2, m.b2};

    double first_loss = 0, loss_value = 0;
    for (int step = 0; step <= STEPS; step++) {
        /* forward: logits, then the mean cross-entropy (a 0-d tensor) */
        tg_tensor *logits = mlp_forward(&m, X);
        tg_tensor *loss = ok(tg_cross_entropy(logits, y, TG_REDUCTION_MEAN), "cross_entropy");
        if (tg_tensor_item(loss, &loss_value) != TG_OK) die("item");
        if (step == 0) first_loss = loss_value;
        if (step % PRINT_EVERY == 0)
            printf("step %4d  loss %.4f  accuracy %.3f\n", step, loss_value, accuracy(logits, y));

        if (step < STEPS) {
            /* 3. backward: fills p->grad for every parameter; the saved
             *    tensors of this step's graph are freed as it goes. */
            if (tg_backward(loss, NULL, 0) != TG_OK) die("backward");

            /* 4. the update.  Writing into a tensor that requires grad is
             *    refused while grad mode is on (it would silently corrupt the
             *    tape), so switch it off around the optimizer step. */
            bool was = tg_set_grad_enabled(false);
            for (int i = 0; i < 4; i++) {
                tg_tensor *p = params[i];
                /* p += (-lr) * p.grad, in place: same storage, version + 1 */
                if (tg_tensor_axpy_(p, -LR, p->grad) != TG_OK) die("axpy_");
                /* zero the gradient for the next step: without this,
                 * backward would ADD the next gradient to this one */
                if (tg_tensor_set_grad(p, NULL) != TG_OK) die("set_grad");
            }
            tg_set_grad_enabled(was);
        }

        /* 5. drop this step's references: the whole graph (tape entries and
         *    the tensors they saved) is freed here. */
        tg_tensor_release(loss);
        tg_tensor_release(logits);
    }
    printf("final loss %.4f (initial %.4f)\n", loss_value, first_loss);

    for (int i = 0; i < 4; i++) tg_tensor_release(params[i]);
    tg_tensor_release(X);
    tg_tensor_release(y);

    if (!(loss_value < first_loss / 10)) {
        fprintf(stderr, "mlp: FAILED: the loss did not drop below a tenth of its start\n");
        return 1;
    }
    return 0;
}
