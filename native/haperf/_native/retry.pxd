"""Contract of haperf._native.retry: the retry budget (a token bucket of retries) and the fast
first attempt of the retry decorators.

RetryBudgetCore is pure: time is an argument (`now_ns`). Tokens are kept in thousandths
(milli-tokens, int64), so deposits of a fractional ratio add up exactly.

Invariants:
- 0 <= balance_milli <= tokens_max_milli; 0 <= reserve_milli <= reserve_max_milli;
- a retry is allowed only by withdrawing one whole token (1000 milli-tokens) from the balance,
  or from the time-refilled reserve when the balance is short;
- counters only grow.
"""

from libc.stdint cimport int64_t, uint64_t


cdef class RetryBudgetCore:
    cdef readonly int64_t balance_milli
    cdef readonly int64_t tokens_max_milli
    cdef readonly int64_t deposit_milli
    cdef readonly int64_t reserve_milli
    cdef readonly int64_t reserve_max_milli
    cdef readonly int64_t reserve_per_s
    cdef readonly int64_t reserve_at_ns
    cdef readonly uint64_t deposits
    cdef readonly uint64_t withdrawals
    cdef readonly uint64_t denials

    cdef void deposit_c(self) noexcept
    cdef bint withdraw_c(self, int64_t now_ns) noexcept
