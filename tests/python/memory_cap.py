"""A bound on the address space for tests that hand ops adversarial sizes
(test_fuzz_api's Hypothesis machine, test_fuzz_regressions' sweeps):
tests/python is on sys.path (conftest.py).  Linux's overcommit grants a single
request below RAM + swap and the op then writes every byte, so such a test
caps RLIMIT_AS at what the process uses now plus `mb` MiB: a huge request
fails as a clean MemoryError instead of growing the process.  Not under
AddressSanitizer (TAPEGRAD_SANITIZED=1), whose shadow memory needs a huge
address space (ASAN_OPTIONS' max_allocation_size_mb is the bound there)."""
import os


def cap_address_space(mb):
    """Cap RLIMIT_AS at the current size + mb MiB; return the limits to
    restore (None if nothing was changed)."""
    import resource
    if mb <= 0 or os.environ.get("TAPEGRAD_SANITIZED") or not os.path.exists("/proc/self/statm"):
        return None
    old = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        cap = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + (mb << 20)
    soft, hard = old
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        return None  # already tighter (a `ulimit -v` of the caller)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return old


def restore_address_space(old):
    if old is not None:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, old)
