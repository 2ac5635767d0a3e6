/*
 * registry.c -- the table of ops, generated from oplist.h, and the parser of
 * the `examples` strings that registry-driven tests use.
 */
#include "ops_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TG_OP(name, sig) &tg_opdef_##name,
static const tg_opdef *const table[] = {
#include "oplist.h"
};
#undef TG_OP

#define TG_OP(name, sig) TG_SIG_##sig,
static const tg_op_sig sigs[] = {
#include "oplist.h"
};
#undef TG_OP

_Static_assert(sizeof table / sizeof *table == TG_OPID_COUNT,
               "the op table and the op-id enum must have one entry per op");

int tg_op_count(void) { return TG_OPID_COUNT; }

tg_op_sig tg_op_signature(const tg_opdef *op) {
    return (op && op->id >= 0 && op->id < TG_OPID_COUNT) ? sigs[op->id] : TG_SIG_INTERNAL;
}

const char *tg_op_sig_name(tg_op_sig sig) {
    static const char *const names[] = {"unary", "binary", "reduce", "custom", "internal"};
    return (unsigned)sig < sizeof names / sizeof *names ? names[sig] : "internal";
}

tg_flops tg_op_flops(const tg_opdef *op) {
    if (!op) return (tg_flops){TG_FLOPS_NONE, 0, 0, false};
    if (op->flops.per != TG_FLOPS_AUTO) return op->flops;
    if (op->arity >= 2 || op->arity < 0) return (tg_flops){TG_FLOPS_OUTPUT, 1, 2, true};
    return (tg_flops){TG_FLOPS_OUTPUT, 1, op->cost > 1 ? 3 : 1, false};
}

const char *tg_flops_kind_name(tg_flops_kind k) {
    static const char *const names[] = {"auto",   "none",   "output",   "input",
                                        "matmul", "conv",   "conv_grad"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "none";
}

bool tg_op_functional(const tg_opdef *op) {
    if (!op || tg_op_signature(op) == TG_SIG_INTERNAL) return false;
    if (op->functional) return true;
    const char *base = op->file ? op->file : "";
    for (const char *c = base; *c; c++)
        if (*c == '/' || *c == '\\') base = c + 1;
    return !strcmp(base, "nn.c") || !strcmp(base, "conv.c");
}

const tg_opdef *tg_op_get(int i) { return (i >= 0 && i < TG_OPID_COUNT) ? table[i] : NULL; }

const tg_opdef *tg_op_find(const char *name) {
    for (int i = 0; i < TG_OPID_COUNT; i++)
        if (strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}

/* Does msg name `who` as a word (not inside a longer identifier)? */
static bool names_word(const char *msg, const char *who) {
    size_t n = strlen(who);
    for (const char *c = strstr(msg, who); c; c = strstr(c + 1, who)) {
        bool before = c > msg && (c[-1] == '_' || isalnum((unsigned char)c[-1]));
        bool after = c[n] == '_' || isalnum((unsigned char)c[n]);
        if (!before && !after) return true;
    }
    return false;
}

/* A generic call's error names the op called, even when a constituent
 * failed (trace's "diagonal: axis ...", tile's "broadcast_to: shape ...",
 * one_hot's "empty: ..."): "trace: diagonal: axis ...". */
static void named_error(const char *who) {
    tg_status st = tg_error_status();
    const char *msg = tg_error_message();
    if (st == TG_OK || names_word(msg, who)) return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s: %s", who, msg);
    tg_error_set(st, "%s", buf);
}

tg_tensor *tg_op_apply(const tg_opdef *op, int n, tg_tensor *const *in, const tg_params *p) {
    if (!op || !op->apply) return TG_FAIL(TG_ERR_VALUE, "apply: no such op");
    if (op->arity >= 0 && n != op->arity)
        return TG_FAIL(TG_ERR_VALUE, "%s: expected %d inputs, got %d", op->name, op->arity, n);
    if (op->arity < 0 && n < 1) /* every variadic op reads in[0]; those that read more check */
        return TG_FAIL(TG_ERR_VALUE, "%s: expected at least 1 input, got %d", op->name, n);
    tg_tensor *out = op->apply(in, n, p);
    if (!out) named_error(op->name);
    return out;
}

/* ---- examples ----------------------------------------------------------- */

int tg_op_example_count(const tg_opdef *op) {
    if (!op->examples || !op->examples[0]) return 0;
    int n = 1;
    for (const char *c = op->examples; *c; c++) n += *c == ';';
    return n;
}

static int parse_list(const char *s, int64_t *out, int max) {
    int n = 0;
    while (*s && *s != ' ' && n < max) {
        char *end;
        out[n++] = strtoll(s, &end, 10);
        if (end == s) break;
        s = end;
        if (*s == ',') s++;
    }
    return n;
}

tg_status tg_params_parse(const char *s, tg_params *p) {
    memset(p, 0, sizeof *p);
    p->naxes = -1;
    while (s && *s) {
        while (*s == ' ') s++;
        if (!*s) break;
        if (!strncmp(s, "axes=", 5)) {
            p->naxes = parse_list(s + 5, p->axes, TG_MAX_DIMS);
        } else if (!strncmp(s, "keep=", 5)) {
            p->keepdims = atoi(s + 5) != 0;
        } else if (!strncmp(s, "shape=", 6)) {
            p->ndim = parse_list(s + 6, p->shape, TG_MAX_DIMS);
        } else if (!strncmp(s, "ints=", 5)) {
            parse_list(s + 5, p->ints, 4 * TG_MAX_DIMS);
        } else if (s[0] == 'f' && s[1] >= '0' && s[1] <= '3' && s[2] == '=') {
            p->f[s[1] - '0'] = strtod(s + 3, NULL);
        } else if (s[0] == 'i' && s[1] >= '0' && s[1] <= '3' && s[2] == '=') {
            p->i[s[1] - '0'] = strtoll(s + 3, NULL, 10);
        } else {
            return tg_error_set(TG_ERR_VALUE, "params: cannot parse '%s'", s);
        }
        while (*s && *s != ' ') s++;
    }
    return TG_OK;
}

/* Make one example input from its spec, e.g. "+T3x4" or "i5:2x3". */
static tg_tensor *make_input(const char *spec, size_t len, tg_dtype dt) {
    char buf[128];
    if (len >= sizeof buf) return TG_FAIL(TG_ERR_VALUE, "example: spec too long");
    memcpy(buf, spec, len);
    buf[len] = 0;
    const char *s = buf;
    char kind = 'n';
    int64_t hi = 0;
    if (*s == '+' || *s == '~' || *s == 'u' || *s == 'b' || *s == 'g' || *s == 'd' || *s == 's') kind = *s++;
    else if (*s == 'i') {
        kind = 'i';
        hi = strtoll(s + 1, (char **)&s, 10);
        if (*s != ':') return TG_FAIL(TG_ERR_VALUE, "example: bad int spec '%s'", buf);
        s++;
    }
    bool trans = false;
    if (*s == 'T') {
        trans = true;
        s++;
    }
    int64_t shape[TG_MAX_DIMS];
    int nd = 0;
    if (*s != '-') {
        while (*s && nd < TG_MAX_DIMS) {
            shape[nd++] = strtoll(s, (char **)&s, 10);
            if (*s == 'x') s++;
            else break;
        }
    }
    int64_t rs[TG_MAX_DIMS];
    for (int i = 0; i < nd; i++) rs[i] = trans ? shape[nd - 1 - i] : shape[i];
    tg_tensor *t;
    if (kind == 'i') {
        t = tg_tensor_rand(nd, rs, 0, (double)hi, TG_FLOAT64);
        if (t) {
            tg_tensor *c = tg_tensor_empty(nd, rs, TG_INT64);
            if (c)
                for (int64_t i = 0; i < c->numel; i++)
                    ((int64_t *)tg_tensor_data(c))[i] = (int64_t)((double *)tg_tensor_data(t))[i];
            tg_tensor_release(t);
            t = c;
        }
    } else if (kind == '+') {
        t = tg_tensor_rand(nd, rs, 0.5, 2.0, dt);
    } else if (kind == 'g') {
        t = tg_tensor_rand(nd, rs, 1.2, 3.0, dt); /* above 1: acosh's domain */
    } else if (kind == 'u') {
        t = tg_tensor_rand(nd, rs, 0.05, 0.95, dt);
    } else if (kind == 'b') {
        t = tg_tensor_bernoulli(nd, rs, 0.5, dt);
    } else if (kind == '~') {
        t = tg_tensor_rand(nd, rs, 0.2, 1.0, dt);
        if (t)
            for (int64_t i = 0; i < t->numel; i++)
                if (tg_random_uniform() < 0.5) {
                    if (dt == TG_FLOAT32) ((float *)tg_tensor_data(t))[i] *= -1;
                    else ((double *)tg_tensor_data(t))[i] *= -1;
                }
    } else if ((kind == 'd' || kind == 's') && nd >= 2 && rs[nd - 1] == rs[nd - 2]) {
        /* square matrices far from singular: I + uniform(-1/2, 1/2)/n off the
         * diagonal (strictly diagonally dominant); 's': symmetric, M + M^T,
         * positive definite by Gershgorin (for inv, solve, cholesky, eigh) */
        int64_t n = rs[nd - 1];
        t = tg_tensor_rand(nd, rs, -0.5 / (double)n, 0.5 / (double)n, TG_FLOAT64);
        if (t) {
            double *v = (double *)tg_tensor_data(t);
            for (int64_t m = 0; m < t->numel / (n * n); m++) {
                double *a = v + m * n * n;
                for (int64_t i = 0; i < n; i++) a[i * n + i] = 1.0;
                if (kind == 's')
                    for (int64_t i = 0; i < n; i++)
                        for (int64_t j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = a[i * n + j] + a[j * n + i];
            }
            if (dt != TG_FLOAT64) {
                tg_tensor *c = tg__as_dtype(t, dt);
                tg_tensor_release(t);
                t = c;
            }
        }
    } else if (kind == 'd' || kind == 's') {
        return TG_FAIL(TG_ERR_VALUE, "example: '%c' needs a square matrix shape, got '%s'", kind, buf);
    } else {
        t = tg_tensor_randn(nd, rs, 0, 1, dt);
    }
    if (t && trans && nd >= 2) {
        int64_t perm[TG_MAX_DIMS];
        for (int i = 0; i < nd; i++) perm[i] = nd - 1 - i;
        tg_tensor *v = tg_permute(t, perm);
        tg_tensor_release(t);
        t = v;
    }
    return t;
}

tg_status tg_op_example(const tg_opdef *op, int k, tg_dtype dt, int *n_inputs, tg_tensor **inputs,
                        tg_params *params) {
    *n_inputs = 0;
    if (k < 0) /* (the loop below would skip nothing: example 0) */
        return tg_error_set(TG_ERR_INDEX, "%s: no example %d (they are numbered from 0)", op->name, k);
    const char *s = op->examples;
    for (int i = 0; i < k && s; i++) {
        s = strchr(s, ';');
        if (s) s++;
    }
    if (!s || !*s) return tg_error_set(TG_ERR_INDEX, "%s: no example %d", op->name, k);
    const char *end = strchr(s, ';');
    if (!end) end = s + strlen(s);
    const char *bar = memchr(s, '|', (size_t)(end - s));
    const char *inp_end = bar ? bar : end;
    char pbuf[256] = "";
    if (bar) {
        size_t n = (size_t)(end - bar - 1);
        if (n >= sizeof pbuf) return tg_error_set(TG_ERR_VALUE, "example: params too long");
        memcpy(pbuf, bar + 1, n);
        pbuf[n] = 0;
    }
    if (tg_params_parse(pbuf, params)) return tg_error_status();
    const char *c = s;
    while (c < inp_end && *n_inputs < 8) {
        const char *comma = memchr(c, ',', (size_t)(inp_end - c));
        const char *stop = comma ? comma : inp_end;
        tg_tensor *t = make_input(c, (size_t)(stop - c), dt);
        if (!t) {
            for (int i = 0; i < *n_inputs; i++) tg_tensor_release(inputs[i]);
            *n_inputs = 0;
            return tg_error_status();
        }
        inputs[(*n_inputs)++] = t;
        c = comma ? comma + 1 : inp_end;
    }
    return TG_OK;
}
