"""Source of notebooks/assignments/05_attention_vjp.ipynb (instructor version)."""
from cwtools import answer, given, md, tests, write, written

cells = [
md(r"""
# Assignment 5 · The backward pass of an attention head

Notebook 05 steps through the backward pass of one causal attention head on the tape. Here
you write it yourself. For a sequence of $T$ vectors $X$ ($T \times d_{model}$) and weights
$W_q, W_k, W_v$ ($d_{model} \times d_k$), the head computes

$$
Q = X W_q,\quad K = X W_k,\quad V = X W_v,\qquad
S = \frac{Q K^\top}{\sqrt{d_k}} + M,\qquad
P = \operatorname{softmax}_{\text{rows}}(S),\qquad
Y = P\,V ,
$$

where the **causal mask** $M$ is $0$ on and below the diagonal and $-\infty$ above it.
Given the upstream gradient $\bar Y = \partial L / \partial Y$, you will write, step by step,
$\bar S$ (the VJP of the row softmax), $\bar P$ and $\bar V$, $\bar Q$ and $\bar K$, and the
gradients of the weights, in NumPy (float64).

**How to work.** Write your code where a cell says `raise NotImplementedError(...)` (delete
that line). The *tests* cells compare your gradients with the ones tapegrad's tape computes
(and, at the end, with finite differences); when one is wrong, the message says which, and
for the usual mistakes what it looks like (transposed, off by a constant factor, non-zero
where the mask makes it zero). `python -m tapegrad.coursework check 05_attention_vjp.ipynb`
runs the whole notebook from a terminal. The grader runs more (hidden) tests with other
shapes ($T \ne d_k$, $d_{model} \ne d_k$): make your functions work for any shapes.
""", zh=r"""
# 作业 5 · 注意力头的反向传播

笔记本 05 在记录带（tape）上一步一步地走过一个因果注意力头（causal attention head）的反向
传播。这里由你自己来写。对于由 $T$ 个向量组成的序列 $X$（$T \times d_{model}$）和权重
$W_q, W_k, W_v$（$d_{model} \times d_k$），这个注意力头计算

$$
Q = X W_q,\quad K = X W_k,\quad V = X W_v,\qquad
S = \frac{Q K^\top}{\sqrt{d_k}} + M,\qquad
P = \operatorname{softmax}_{\text{rows}}(S),\qquad
Y = P\,V ,
$$

其中**因果掩码**（causal mask）$M$ 在对角线及其下方为 $0$，在对角线上方为 $-\infty$。
已知上游梯度 $\bar Y = \partial L / \partial Y$，你要用 NumPy（float64）一步一步地写出
$\bar S$（按行 softmax 的 VJP）、$\bar P$ 和 $\bar V$、$\bar Q$ 和 $\bar K$，以及权重的梯度。

**怎么做。** 在写着 `raise NotImplementedError(...)` 的单元里写你的代码（删掉那一行）。
标为 *tests* 的单元把你的梯度与 tapegrad 的记录带算出的梯度相比较（最后还与有限差分相比较）；
某个梯度出错时，消息会指出是哪一个，对常见的错误还会说出它像什么（转置了、差一个常数因子、
在掩码使其为零的位置不为零）。在终端里，
`python -m tapegrad.coursework check 05_attention_vjp.ipynb` 会运行整个笔记本。评分程序还会用别的形状（$T \ne d_k$，
$d_{model} \ne d_k$）运行更多（隐藏的）测试：你的函数要对任意形状都成立。
"""),
given(r"""
import numpy as np
import tapegrad as tg
from tapegrad.coursework import assert_grads_close, attention_case


def attention_forward(X, Wq, Wk, Wv):
    # one causal attention head, in NumPy: returns every intermediate
    T, d_k = X.shape[0], Wq.shape[1]
    M = np.triu(np.full((T, T), -np.inf), k=1)      # -inf above the diagonal
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    S = Q @ K.T / np.sqrt(d_k) + M
    E = np.exp(S - S.max(axis=1, keepdims=True))    # exp(-inf) = 0: the future gets weight 0
    P = E / E.sum(axis=1, keepdims=True)
    return {"Q": Q, "K": K, "V": V, "S": S, "P": P, "Y": P @ V}
""", "setup"),
md(r"""
## The reference: the same head on the tape

`attention_case(seed, T, d_model, d_k)` draws $X$, the weights and an upstream gradient
$\bar Y$ (`case.dY`), records the head on tapegrad's tape and differentiates
$L = \sum_{ij} Y_{ij} \bar Y_{ij}$ (whose gradient with respect to $Y$ is exactly $\bar Y$).
`case.grads` holds the tape's gradients of $L$ with respect to every intermediate
(`dP`, `dS`, `dQ`, `dK`, `dV`) and weight (`dWq`, `dWk`, `dWv`); `case.fd` the weights'
gradients by central finite differences. The tests compare yours with them.
""", zh=r"""
## 参照：记录带上的同一个注意力头

`attention_case(seed, T, d_model, d_k)` 随机生成 $X$、权重和上游梯度 $\bar Y$
（`case.dY`），在 tapegrad 的记录带上记录这个注意力头，并对
$L = \sum_{ij} Y_{ij} \bar Y_{ij}$ 求导（它对 $Y$ 的梯度恰好就是 $\bar Y$）。
`case.grads` 存放记录带算出的 $L$ 对每个中间量（`dP`、`dS`、`dQ`、`dK`、`dV`）和每个权重
（`dWq`、`dWk`、`dWv`）的梯度；`case.fd` 存放用中心有限差分算出的权重梯度。测试把你的梯度
与它们相比较。
"""),
given(r"""
case = attention_case(seed=0)               # T = 4, d_model = 3, d_k = 3
fwd = attention_forward(case.X, case.Wq, case.Wk, case.Wv)
print("same forward as the tape's:", np.allclose(fwd["Y"], case.Y))
print("P (row t: how much position t reads each position):")
print(np.round(fwd["P"], 3) + 0.0)          # + 0.0: no "-0." in the print
print("the tape's dS:")
print(np.round(case.grads["dS"], 4) + 0.0)
""", "reference"),
md(r"""
## Part 1 · The VJP of the row softmax

Each row $p = \operatorname{softmax}(s)$ has the Jacobian
$\partial p_j / \partial s_k = p_j(\delta_{jk} - p_k)$. With the upstream gradient $\bar p$
of that row,

$$
\bar s_k = \sum_j \bar p_j\, p_j (\delta_{jk} - p_k)
         = p_k \Big(\bar p_k - \sum_j \bar p_j p_j\Big) .
$$

**Exercise 1** (3 points). Write `softmax_vjp(P, dP)`: $\bar S$ from $P$ ($T \times T$, the
softmax of each row of $S$) and $\bar P$, for all rows at once. Do not build the $T \times T$
Jacobian of each row: the formula above needs only elementwise products and one sum per row.
""", zh=r"""
## 第 1 部分 · 按行 softmax 的 VJP

每一行 $p = \operatorname{softmax}(s)$ 的雅可比矩阵为
$\partial p_j / \partial s_k = p_j(\delta_{jk} - p_k)$。设该行的上游梯度为 $\bar p$，则

$$
\bar s_k = \sum_j \bar p_j\, p_j (\delta_{jk} - p_k)
         = p_k \Big(\bar p_k - \sum_j \bar p_j p_j\Big) .
$$

**练习 1**（3 分）。写出 `softmax_vjp(P, dP)`：由 $P$（$T \times T$，$S$ 每一行的
softmax）和 $\bar P$ 一次算出所有行的 $\bar S$。不要为每一行构造 $T \times T$ 的雅可比矩阵：
上面的公式只需要逐元素乘积和每行一次求和。
"""),
answer(r"""
def softmax_vjp(P, dP):
    ### BEGIN SOLUTION
    return P * (dP - (P * dP).sum(axis=1, keepdims=True))
    ### END SOLUTION
""", "softmax_vjp"),
tests(r"""
case = attention_case(seed=0)
dS = softmax_vjp(case.P, case.grads["dP"])
assert_grads_close({"dS": dS}, {"dS": case.grads["dS"]}, mistakes=case.mistakes)
### BEGIN HIDDEN TESTS
for seed, T, d_model, d_k in [(1, 5, 3, 3), (2, 6, 4, 2), (3, 1, 2, 2)]:
    case = attention_case(seed, T, d_model, d_k)
    dS = softmax_vjp(case.P, case.grads["dP"])
    assert_grads_close({"dS": dS}, {"dS": case.grads["dS"]}, mistakes=case.mistakes)
### END HIDDEN TESTS
""", "softmax_vjp_test", 3),
md(r"""
## Part 2 · Through $Y = P V$

$Y = P V$ is a matrix product: as for any $C = A B$, $\bar A = \bar C B^\top$ and
$\bar B = A^\top \bar C$.

**Exercise 2** (2 points). Write `value_grads(P, V, dY)` returning $(\bar P, \bar V)$.
Check the shapes: $\bar P$ is $T \times T$, $\bar V$ is $T \times d_k$.
""", zh=r"""
## 第 2 部分 · 穿过 $Y = P V$

$Y = P V$ 是一个矩阵乘积：与任何 $C = A B$ 一样，$\bar A = \bar C B^\top$，
$\bar B = A^\top \bar C$。

**练习 2**（2 分）。写出 `value_grads(P, V, dY)`，返回 $(\bar P, \bar V)$。检查形状：
$\bar P$ 是 $T \times T$，$\bar V$ 是 $T \times d_k$。
"""),
answer(r"""
def value_grads(P, V, dY):
    ### BEGIN SOLUTION
    return dY @ V.T, P.T @ dY
    ### END SOLUTION
""", "value_grads"),
tests(r"""
case = attention_case(seed=0)
dP, dV = value_grads(case.P, case.V, case.dY)
assert_grads_close({"dP": dP, "dV": dV}, {k: case.grads[k] for k in ("dP", "dV")},
                   mistakes=case.mistakes)
### BEGIN HIDDEN TESTS
for seed, T, d_model, d_k in [(1, 5, 3, 3), (2, 6, 4, 2), (3, 3, 2, 3)]:
    case = attention_case(seed, T, d_model, d_k)
    dP, dV = value_grads(case.P, case.V, case.dY)
    assert_grads_close({"dP": dP, "dV": dV}, {k: case.grads[k] for k in ("dP", "dV")},
                       mistakes=case.mistakes)
### END HIDDEN TESTS
""", "value_grads_test", 2),
md(r"""
## Part 3 · Through the scores

$S = Q K^\top / \sqrt{d_k} + M$. The mask $M$ is a constant (it needs no gradient), and
$Q K^\top$ is a matrix product with a transposed second factor.

**Exercise 3** (3 points). Write `score_grads(Q, K, dS)` returning $(\bar Q, \bar K)$, with
$d_k$ = `Q.shape[1]`. Mind which of $\bar S$ and $\bar S^\top$ each gradient needs, and the
scale.
""", zh=r"""
## 第 3 部分 · 穿过注意力分数

$S = Q K^\top / \sqrt{d_k} + M$。掩码 $M$ 是常数（它不需要梯度），而 $Q K^\top$ 是第二个
因子被转置了的矩阵乘积。

**练习 3**（3 分）。写出 `score_grads(Q, K, dS)`，返回 $(\bar Q, \bar K)$，其中
$d_k$ = `Q.shape[1]`。注意每个梯度需要的是 $\bar S$ 还是 $\bar S^\top$，以及缩放因子。
"""),
answer(r"""
def score_grads(Q, K, dS):
    ### BEGIN SOLUTION
    scale = 1.0 / np.sqrt(Q.shape[1])
    return dS @ K * scale, dS.T @ Q * scale
    ### END SOLUTION
""", "score_grads"),
tests(r"""
case = attention_case(seed=0)
dQ, dK = score_grads(case.Q, case.K, case.grads["dS"])
assert_grads_close({"dQ": dQ, "dK": dK}, {k: case.grads[k] for k in ("dQ", "dK")},
                   mistakes=case.mistakes)
### BEGIN HIDDEN TESTS
for seed, T, d_model, d_k in [(1, 5, 3, 3), (2, 6, 4, 2), (3, 3, 2, 3)]:
    case = attention_case(seed, T, d_model, d_k)
    dQ, dK = score_grads(case.Q, case.K, case.grads["dS"])
    assert_grads_close({"dQ": dQ, "dK": dK}, {k: case.grads[k] for k in ("dQ", "dK")},
                       mistakes=case.mistakes)
### END HIDDEN TESTS
""", "score_grads_test", 3),
md(r"""
## Part 4 · The weights

$Q = X W_q$, $K = X W_k$, $V = X W_v$: three matrix products with the same $X$.

**Exercise 4** (2 points). Write `weight_grads(X, dQ, dK, dV)` returning
$(\bar W_q, \bar W_k, \bar W_v)$, each $d_{model} \times d_k$.
""", zh=r"""
## 第 4 部分 · 权重

$Q = X W_q$，$K = X W_k$，$V = X W_v$：三个矩阵乘积，用的是同一个 $X$。

**练习 4**（2 分）。写出 `weight_grads(X, dQ, dK, dV)`，返回
$(\bar W_q, \bar W_k, \bar W_v)$，每个都是 $d_{model} \times d_k$。
"""),
answer(r"""
def weight_grads(X, dQ, dK, dV):
    ### BEGIN SOLUTION
    return X.T @ dQ, X.T @ dK, X.T @ dV
    ### END SOLUTION
""", "weight_grads"),
tests(r"""
case = attention_case(seed=0)
g = case.grads
dWq, dWk, dWv = weight_grads(case.X, g["dQ"], g["dK"], g["dV"])
assert_grads_close({"dWq": dWq, "dWk": dWk, "dWv": dWv},
                   {k: g[k] for k in ("dWq", "dWk", "dWv")}, mistakes=case.mistakes)
### BEGIN HIDDEN TESTS
for seed, T, d_model, d_k in [(1, 5, 3, 3), (2, 6, 4, 2), (3, 3, 2, 3)]:
    case = attention_case(seed, T, d_model, d_k)
    g = case.grads
    dWq, dWk, dWv = weight_grads(case.X, g["dQ"], g["dK"], g["dV"])
    assert_grads_close({"dWq": dWq, "dWk": dWk, "dWv": dWv},
                       {k: g[k] for k in ("dWq", "dWk", "dWv")}, mistakes=case.mistakes)
### END HIDDEN TESTS
""", "weight_grads_test", 2),
md(r"""
## Part 5 · All together

`attention_backward` chains your four functions, from $\bar Y$ back to the weights. Its
gradients must equal the tape's and the finite differences', and nothing may flow into the
future: $\bar S$ is exactly zero above the diagonal.
""", zh=r"""
## 第 5 部分 · 合在一起

`attention_backward` 把你的四个函数串起来，从 $\bar Y$ 一直反向传播到权重。它的梯度必须
等于记录带算出的梯度和有限差分的结果，而且不能有任何梯度流向未来：$\bar S$ 在对角线上方
必须恰好为零。
"""),
given(r"""
def attention_backward(X, Wq, Wk, Wv, dY):
    f = attention_forward(X, Wq, Wk, Wv)
    dP, dV = value_grads(f["P"], f["V"], dY)
    dS = softmax_vjp(f["P"], dP)
    dQ, dK = score_grads(f["Q"], f["K"], dS)
    dWq, dWk, dWv = weight_grads(X, dQ, dK, dV)
    return {"dP": dP, "dS": dS, "dQ": dQ, "dK": dK, "dV": dV,
            "dWq": dWq, "dWk": dWk, "dWv": dWv}
""", "backward"),
tests(r"""
case = attention_case(seed=0)
mine = attention_backward(case.X, case.Wq, case.Wk, case.Wv, case.dY)
assert_grads_close(mine, case.grads, mistakes=case.mistakes)
assert_grads_close(mine, case.fd, rtol=1e-5, atol=1e-7)
assert np.all(np.triu(mine["dS"], k=1) == 0), "dS must be exactly 0 above the diagonal"
### BEGIN HIDDEN TESTS
for seed, T, d_model, d_k in [(4, 7, 5, 3), (5, 2, 3, 4)]:
    case = attention_case(seed, T, d_model, d_k)
    mine = attention_backward(case.X, case.Wq, case.Wk, case.Wv, case.dY)
    assert_grads_close(mine, case.grads, mistakes=case.mistakes)
    assert_grads_close(mine, case.fd, rtol=1e-5, atol=1e-7)
    assert np.all(np.triu(mine["dS"], k=1) == 0), "dS must be exactly 0 above the diagonal"
### END HIDDEN TESTS
""", "backward_test", 2),
md(r"""
**Exercise 5** (1 point, graded by hand). $\bar S$ is exactly zero above the diagonal, and so
the query of position $t$ receives no gradient from the keys of later positions. Why? Use
the formula of Exercise 1, and say what a small change of a masked score $S_{tj}$ ($j > t$)
does to the loss.

Write your answer in the next cell.
""", zh=r"""
**练习 5**（1 分，人工评分）。$\bar S$ 在对角线上方恰好为零，因此位置 $t$ 的查询（query）
不会从后面位置的键（key）得到任何梯度。为什么？请用练习 1 的公式，并说明一个被掩码的分数
$S_{tj}$（$j > t$）发生微小变化时，损失会怎样。

在下一个单元里写你的答案。
"""),
written(r"""
### BEGIN SOLUTION
Above the diagonal $M_{tj} = -\infty$, so $S_{tj} = -\infty$ and $P_{tj} = e^{-\infty}/\ldots = 0$
exactly. The softmax VJP is $\bar S_{tj} = P_{tj}(\bar P_{tj} - \sum_k \bar P_{tk} P_{tk})$: a
factor $P_{tj} = 0$ makes it $0$. In other words, changing a masked score by any finite amount
leaves it at $-\infty$, $P$ does not change, nor does the loss: its derivative is $0$. The mask
itself is a constant and gets no gradient. Since $\bar Q = \bar S K / \sqrt{d_k}$ and
$\bar K = \bar S^\top Q / \sqrt{d_k}$, the zero entries carry nothing between position $t$ and
the later positions $j$: the output at $t$ does not depend on the future, and neither does
its gradient.
### END SOLUTION
""", "mask_answer", 1, zh=r"""
### BEGIN SOLUTION
在对角线上方 $M_{tj} = -\infty$，所以 $S_{tj} = -\infty$，且 $P_{tj} = e^{-\infty}/\ldots = 0$
恰好成立。softmax 的 VJP 是 $\bar S_{tj} = P_{tj}(\bar P_{tj} - \sum_k \bar P_{tk} P_{tk})$：
因子 $P_{tj} = 0$ 使它为 $0$。换句话说，被掩码的分数改变任意有限的量后仍是 $-\infty$，
$P$ 不变，损失也不变：导数为 $0$。掩码本身是常数，没有梯度。由于
$\bar Q = \bar S K / \sqrt{d_k}$、$\bar K = \bar S^\top Q / \sqrt{d_k}$，这些零元素在位置 $t$
与后面的位置 $j$ 之间不传递任何东西：位置 $t$ 的输出不依赖于未来，它的梯度也不依赖于未来。
### END SOLUTION
"""),
md(r"""
**What to take away.** The backward pass of attention is three matrix products and one
softmax VJP, each local; the only subtle steps are the transposes ($\bar K$ needs
$\bar S^\top$) and the softmax's row sum. The causal mask costs nothing in the backward pass:
the zeros of $P$ stop the gradient by themselves.
""", zh=r"""
**要点。** 注意力的反向传播由三个矩阵乘积和一个 softmax 的 VJP 组成，每一步都是局部的；
唯一需要小心的是转置（$\bar K$ 需要 $\bar S^\top$）和 softmax 的按行求和。因果掩码在反向
传播中不需要任何额外计算：$P$ 中的零自己就挡住了梯度。
"""),
]

if __name__ == "__main__":
    print(write("05_attention_vjp.ipynb", cells))
