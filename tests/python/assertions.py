"""Assertions shared by the error tests (test_errors, test_robustness,
test_adversarial): tests/python is on sys.path (conftest.py)."""
import pytest


def raises(exc, *words):
    """pytest.raises that also checks every word appears in the message."""
    class _Ctx:
        def __enter__(self):
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            suppressed = self.cm.__exit__(*a)  # raises if nothing was raised
            if suppressed:
                msg = str(self.info.value)
                for w in words:
                    assert w in msg, f"{w!r} not in the message {msg!r}"
            return suppressed
    return _Ctx()
