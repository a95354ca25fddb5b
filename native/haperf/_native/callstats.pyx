"""haperf._native.callstats: CallStats, per-policy call counters in C (see callstats.pxd)."""

cimport cython


@cython.final
cdef class CallStats:
    """Counters of one policy: calls, successes, failures, rejections, timeouts, ..."""

    def as_dict(self):
        """Every counter by its snake_case name, read in one go."""
        return {
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "rejections": self.rejections,
            "timeouts": self.timeouts,
            "fallbacks": self.fallbacks,
            "hedges": self.hedges,
            "cancellations": self.cancellations,
        }
