"""Generate csrc/kernels/winograd_gen.h: the transforms of Winograd's minimal
filtering F(m x m, r x r), as straight-line C (run: python winograd_gen.py).

The matrices come from the Toom-Cook construction (docs/performance.md,
"Convolution"): the 1-D correlation of an r-tap filter g with n = m + r - 1
inputs d is y = A^T [(G g) * (B^T d)], where, for the n - 1 finite points
a_j and the point at infinity,

    A^T[i][j] = a_j^i                        (m x n; infinity: e_{m-1})
    G[j][k]   = a_j^k / prod_{l!=j}(a_j - a_l)  (n x r; infinity: e_{r-1})
    B^T[j][:] = coefficients of prod_{l!=j}(x - a_l)  (n x n; infinity: of
                prod_l (x - a_l))

(the transpose of the polynomial-product algorithm: evaluate both factors
at the points, multiply, interpolate).  In 2-D every transform is the same
matrix L on both axes, out = L in L^T; the generated function applies one to
P independent tiles side by side (index p, contiguous), so that the compiler
makes vector code of the loop over p.  The coefficients are exact
fractions: zero terms are left out (not multiplied: 0 * inf would be NaN),
1 and -1 become an add or a subtract, the rest a multiply by the rounded
float32 constant.  The order of the additions is fixed (left to right), so
every build computes the same bits.
"""
from fractions import Fraction as Fr
import os


def polymul(a, b):
    r = [Fr(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            r[i + j] += x * y
    return r


def matrices(m, r, pts):
    n = m + r - 1
    pts = [Fr(p) for p in pts]
    assert len(pts) == n - 1 and len(set(pts)) == n - 1
    AT = [[pts[j] ** i for j in range(n - 1)] + [Fr(int(i == m - 1))] for i in range(m)]
    G = []
    for j in range(n - 1):
        den = Fr(1)
        for l in range(n - 1):
            if l != j:
                den *= pts[j] - pts[l]
        G.append([pts[j] ** k / den for k in range(r)])
    G.append([Fr(int(k == r - 1)) for k in range(r)])
    BT = []
    for j in range(n):
        p = [Fr(1)]
        for l in range(n - 1):
            if l != j:
                p = polymul(p, [-pts[l], Fr(1)])
        BT.append(p + [Fr(0)] * (n - len(p)))
    return AT, G, BT


def transpose(M):
    return [list(c) for c in zip(*M)]


def lit(c):
    v = float(c)
    s = repr(v)
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def combo(coefs, names):
    """sum_k coefs[k] * names[k], zero terms left out, left to right."""
    expr = ""
    if coefs and isinstance(coefs[0], tuple):
        coefs, names = zip(*coefs)
    for c, nm in zip(coefs, names):
        if c == 0:
            continue
        if c == 1:
            term, sign = nm, "+"
        elif c == -1:
            term, sign = nm, "-"
        elif c < 0:
            term, sign = f"{lit(-c)} * {nm}", "-"
        else:
            term, sign = f"{lit(c)} * {nm}", "+"
        if not expr:
            expr = term if sign == "+" else f"-{term}"
        else:
            expr += f" {sign} {term}"
    return expr or "0.0f"


def row_pairs(L):
    """Pairs of rows (p, q) with L[q][i] = s (-1)^i L[p][i] (the points a and
    -a of B^T, G and A): out_p = E + O and out_q = s (E - O), E and O the
    sums of the even and odd terms of row p, computed once."""
    pairs, used = [], set()
    for p in range(len(L)):
        for q in range(p + 1, len(L)):
            if p in used or q in used or not any(L[p]):
                continue
            for sgn in (1, -1):
                if all(L[q][i] == sgn * (-1) ** i * L[p][i] for i in range(len(L[p]))) and \
                        any(L[p][i] for i in range(1, len(L[p]), 2)):
                    pairs.append((p, q, sgn))
                    used |= {p, q}
                    break
    return pairs


def col_pairs(L):
    """Pairs of columns (p, q) with L[i][q] = (-1)^i L[i][p] (the points a and
    -a of A^T and G^T): the inputs enter as d_p + d_q (even rows) and
    d_p - d_q (odd rows), each computed once."""
    T = transpose(L)
    return [(p, q) for p, q, sgn in row_pairs(T) if sgn == 1]


def one_pass(L, names, out, emit):
    """Emit out[a] = sum_i L[a][i] names[i] for every row a, with the pairs
    of rows and of columns sharing their partial sums."""
    no, ni = len(L), len(L[0])
    cp = col_pairs(L)
    paired = {i for pq in cp for i in pq}
    terms = [[(L[a][i], names[i]) for i in range(ni) if i not in paired] for a in range(no)]
    for k, (p, q) in enumerate(cp):
        sp, dm = f"{out}s{k}", f"{out}d{k}"
        if any(L[a][p] for a in range(0, no, 2)):
            emit(f"const float {sp} = {names[p]} + {names[q]};")
        if any(L[a][p] for a in range(1, no, 2)):
            emit(f"const float {dm} = {names[p]} - {names[q]};")
        for a in range(no):
            assert L[a][q] == (-1) ** a * L[a][p]
            terms[a].append((L[a][p], sp if a % 2 == 0 else dm))
    done = set()
    if not cp:
        for k, (p, q, sgn) in enumerate(row_pairs(L)):
            e, o = f"{out}e{k}", f"{out}o{k}"
            even = [(L[p][i], names[i]) for i in range(0, ni, 2)]
            odd = [(L[p][i], names[i]) for i in range(1, ni, 2)]
            emit(f"const float {e} = {combo(*zip(*even))}, {o} = {combo(*zip(*odd))};")
            emit(f"const float {out}{p} = {e} + {o};")
            emit(f"const float {out}{q} = {e + ' - ' + o if sgn == 1 else o + ' - ' + e};")
            done |= {p, q}
    for a in range(no):
        if a not in done:
            emit(f"const float {out}{a} = {combo(*zip(*terms[a]))};")


def sep_fn(name, L):
    """out[a][b] = sum_ij L[a][i] L[b][j] in[i][j] for P tiles side by side.

    Two passes over blocks of WG_PB lanes through a small buffer on the
    stack: the rows (each input row to its transformed row), then the
    columns.  Each loop then reads and writes only a handful of streams, so
    the compiler keeps their addresses in registers; one loop doing both
    passes needed 49-64 addresses and spent more instructions on them than
    on the arithmetic."""
    no, ni = len(L), len(L[0])
    out = [f"/* {name}: out = L in L^T, L = {no} x {ni} */",
           f"static WG_ATTR void WG_NAME({name})(const float *restrict x, int64_t sr, int64_t sc,",
           "        float *restrict o, int64_t osr, int64_t osc, int64_t P) {",
           f"    float t[{ni * no}][WG_PB]; /* t[i*{no} + b]: row i of the input, transformed */",
           "    for (int64_t p0 = 0; p0 < P; p0 += WG_PB) {",
           "        const int64_t pn = P - p0 < WG_PB ? P - p0 : WG_PB;"]
    for i in range(ni):
        out.append("        {")
        out.append(f"            const float *restrict xi = x + {i} * sr + p0;")
        out.append("            WG_IVDEP")
        out.append("            for (int64_t p = 0; p < pn; p++) {")
        emit = lambda line: out.append("                " + line)  # noqa: E731
        emit("const float " + ", ".join(f"d{j} = xi[{j} * sc + p]" for j in range(ni)) + ";")
        one_pass(L, [f"d{j}" for j in range(ni)], "r", emit)
        for b in range(no):
            emit(f"t[{i * no + b}][p] = r{b};")
        out.append("            }")
        out.append("        }")
    for b in range(no):
        out.append("        {")
        out.append(f"            float *restrict ob = o + {b} * osc + p0;")
        out.append("            WG_IVDEP")
        out.append("            for (int64_t p = 0; p < pn; p++) {")
        emit = lambda line: out.append("                " + line)  # noqa: E731
        emit("const float " + ", ".join(f"e{i} = t[{i * no + b}][p]" for i in range(ni)) + ";")
        one_pass(L, [f"e{i}" for i in range(ni)], "c", emit)
        for a in range(no):
            emit(f"ob[{a} * osr + p] = c{a};")
        out.append("            }")
        out.append("        }")
    out += ["    }", "}", ""]
    return "\n".join(out)


CONFIGS = [  # (m, r, points)
    (2, 5, [0, 1, -1, 2, -2]),
    (3, 5, [0, 1, -1, 2, -2, Fr(-1, 2)]),
    (2, 3, [0, 1, -1]),
    (4, 3, [0, 1, -1, 2, -2]),
]


def render():
    """The text of winograd_gen.h."""
    parts = ["/* winograd_gen.h -- GENERATED by winograd_gen.py: do not edit.",
             " * Included by winograd.c with WG_NAME, WG_ATTR, WG_IVDEP and WG_PB defined. */", ""]
    for m, r, pts in CONFIGS:
        AT, G, BT = matrices(m, r, pts)
        tag = f"m{m}r{r}"
        parts.append(f"/* F({m}x{m}, {r}x{r}), points {', '.join(str(p) for p in pts)}, inf */")
        parts.append(sep_fn(f"in_{tag}", BT))          # V = B^T d B
        parts.append(sep_fn(f"wt_{tag}", G))           # U = G g G^T
        parts.append(sep_fn(f"out_{tag}", AT))         # Y = A^T M A
        parts.append(sep_fn(f"dy_{tag}", transpose(AT)))  # A dY A^T
        parts.append(sep_fn(f"dw_{tag}", transpose(G)))   # G^T W G
    return "\n".join(parts)


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "winograd_gen.h")
    with open(path, "w") as f:
        f.write(render())


if __name__ == "__main__":
    main()
