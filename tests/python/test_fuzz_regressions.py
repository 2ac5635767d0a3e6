"""Regression tests for what the fuzzers found in the issue 14 op set.

Each test names the input kept in ``tests/fuzz/corpus`` (``regress-NAME``)
that found the defect, and checks the right answer from Python: values
against NumPy or PyTorch, gradients against central finite differences in
float64 (``tapegrad.testing.gradcheck``), bad input as a documented
exception naming the op.
"""
import numpy as np
import pytest

import tapegrad as tg
from assertions import raises
from tapegrad.testing import gradcheck, gradgradcheck


def rand(shape, seed=0, zeros=0):
    a = np.random.default_rng(seed).uniform(0.5, 1.5, size=shape)
    a.ravel()[:zeros] = 0.0
    return a


# -- regress-prod-no-axes-8-dims ---------------------------------------------
# prod over no axes (axis=()) of an 8-d tensor merged "the reduced axes" into
# a ninth dim (index 8 of an int64[8]: UBSan); its VJP with a zero did too.

@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_prod_over_no_axes_of_8_dims_is_the_identity(zeros):
    a = rand((1, 2, 1, 1, 1, 1, 2, 2), zeros=zeros)
    x = tg.tensor(a, requires_grad=True)
    y = tg.prod(x, axis=())
    assert y.shape == a.shape
    np.testing.assert_array_equal(y.numpy(), np.prod(a, axis=()))
    (y * tg.tensor(a + 1.0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a + 1.0, rtol=1e-15)
    assert gradcheck(lambda t: tg.prod(t, axis=()), [tg.tensor(a, requires_grad=True)])
    assert gradgradcheck(lambda t: tg.prod(t, axis=()) ** 2, [tg.tensor(a, requires_grad=True)])


def test_prod_over_no_axes_int64_and_keepdims_at_8_dims():
    a = np.arange(1, 9, dtype=np.int64).reshape(1, 1, 1, 1, 1, 2, 2, 2)
    for keep in (False, True):
        y = tg.prod(tg.tensor(a), axis=(), keepdims=keep)
        assert y.dtype == tg.int64
        np.testing.assert_array_equal(y.numpy(), a)
    # and every axis of the same tensor still reduces to one product
    assert tg.prod(tg.tensor(a)).item() == np.prod(a)
