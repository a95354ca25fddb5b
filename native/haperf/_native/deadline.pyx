"""haperf._native.deadline: DeadlineQueue, a min-heap of deadlines with O(1) removal.

See deadline.pxd for the contract. Memory: the heap is compacted (stale nodes dropped, heap
rebuilt) when it holds more than 2 * live + COMPACT_SLACK nodes, so steady traffic of calls
that finish before their deadline costs O(1) amortised and bounded memory.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport INT64_MAX, int64_t, uint32_t, uint64_t
from libc.string cimport memset

DEF_SLOTS = 64
COMPACT_SLACK = 1024
ENTRIES_MAX_DEFAULT = 1 << 20

cdef enum:
    _FREE = 0
    _LIVE = 1
    _FIRED = 2


@cython.final
cdef class DeadlineQueue:
    """Deadlines (int ns) with an object each; pop_expired(now_ns) hands out the overdue ones."""

    def __cinit__(self, Py_ssize_t entries_max=ENTRIES_MAX_DEFAULT):
        if entries_max < 1 or entries_max > 0x7FFFFFFF:
            raise ValueError(f"entries_max must be in 1..2**31-1, got {entries_max}")
        self.entries_max = entries_max
        self._objs = []
        self.armed_ns = INT64_MAX
        self._heap_cap = DEF_SLOTS
        self._heap = <HeapNode*>PyMem_Malloc(self._heap_cap * sizeof(HeapNode))
        if self._heap == NULL:
            raise MemoryError()
        self._slots_cap = 0
        self._grow_slots()

    def __dealloc__(self):
        PyMem_Free(self._heap)
        PyMem_Free(self._gen)
        PyMem_Free(self._state)
        PyMem_Free(self._slot_deadline)
        PyMem_Free(self._free)

    cdef int _grow_slots(self) except -1:
        cdef Py_ssize_t old = self._slots_cap
        cdef Py_ssize_t new = DEF_SLOTS if old == 0 else old * 2
        cdef Py_ssize_t i
        if new > self.entries_max:
            new = self.entries_max
        if new <= old:
            raise OverflowError(
                f"more than entries_max={self.entries_max} timeouts are live at once; raise "
                "entries_max or bound the concurrency in front of the timeout"
            )
        gen = <uint32_t*>PyMem_Realloc(self._gen, new * sizeof(uint32_t))
        if gen == NULL:
            raise MemoryError()
        self._gen = gen
        state = <unsigned char*>PyMem_Realloc(self._state, new * sizeof(unsigned char))
        if state == NULL:
            raise MemoryError()
        self._state = state
        dl = <int64_t*>PyMem_Realloc(self._slot_deadline, new * sizeof(int64_t))
        if dl == NULL:
            raise MemoryError()
        self._slot_deadline = dl
        free = <uint32_t*>PyMem_Realloc(self._free, new * sizeof(uint32_t))
        if free == NULL:
            raise MemoryError()
        self._free = free
        memset(&self._gen[old], 0, (new - old) * sizeof(uint32_t))
        memset(&self._state[old], 0, (new - old) * sizeof(unsigned char))
        # Free slots are popped from the end: push them highest first so low slots go first.
        for i in range(new - 1, old - 1, -1):
            self._free[self._free_len] = <uint32_t>i
            self._free_len += 1
            self._objs.append(None)
        self._slots_cap = new
        return 0

    cdef bint _node_live(self, HeapNode* node) noexcept:
        return self._state[node.slot] == _LIVE and self._gen[node.slot] == node.gen

    cdef bint _before(self, HeapNode* a, HeapNode* b) noexcept:
        return a.deadline_ns < b.deadline_ns or (
            a.deadline_ns == b.deadline_ns and a.seq < b.seq
        )

    cdef int _push(self, int64_t deadline_ns, uint32_t slot, uint32_t gen) except -1:
        cdef Py_ssize_t i, parent
        cdef HeapNode node
        if self._heap_len == self._heap_cap:
            grown = <HeapNode*>PyMem_Realloc(self._heap, 2 * self._heap_cap * sizeof(HeapNode))
            if grown == NULL:
                raise MemoryError()
            self._heap = grown
            self._heap_cap *= 2
        node.deadline_ns = deadline_ns
        node.seq = self._seq
        self._seq += 1
        node.slot = slot
        node.gen = gen
        i = self._heap_len
        self._heap_len += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not self._before(&node, &self._heap[parent]):
                break
            self._heap[i] = self._heap[parent]
            i = parent
        self._heap[i] = node
        return 0

    cdef void _sift_down(self, Py_ssize_t i) noexcept:
        cdef Py_ssize_t n = self._heap_len
        cdef HeapNode node = self._heap[i]
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and self._before(&self._heap[child + 1], &self._heap[child]):
                child += 1
            if not self._before(&self._heap[child], &node):
                break
            self._heap[i] = self._heap[child]
            i = child
        self._heap[i] = node

    cdef void _pop_root(self) noexcept:
        self._heap_len -= 1
        if self._heap_len > 0:
            self._heap[0] = self._heap[self._heap_len]
            self._sift_down(0)

    cdef void _compact(self) noexcept:
        cdef Py_ssize_t i, j = 0
        for i in range(self._heap_len):
            if self._node_live(&self._heap[i]):
                self._heap[j] = self._heap[i]
                j += 1
        self._heap_len = j
        # Floyd's heap construction: sift down every internal node, last first.
        i = j // 2 - 1
        while i >= 0:
            self._sift_down(i)
            i -= 1
        self.compactions += 1

    def add(self, int64_t deadline_ns, object obj):
        """Add an entry; return its handle (for remove)."""
        cdef uint32_t slot, gen
        if self._free_len == 0:
            self._grow_slots()
        self._free_len -= 1
        slot = self._free[self._free_len]
        gen = self._gen[slot]
        self._state[slot] = _LIVE
        self._slot_deadline[slot] = deadline_ns
        self._objs[slot] = obj
        self._push(deadline_ns, slot, gen)
        self.live += 1
        self.added += 1
        if self._heap_len > 2 * self.live + COMPACT_SLACK:
            self._compact()
        return (<uint64_t>gen << 32) | slot

    def add_after(self, double now_s, int64_t delay_ns, object obj):
        """Add an entry due delay_ns after now_s (a loop time in float seconds).

        Returns its handle, or ~handle (a negative number) when the deadline is earlier than
        armed_ns, i.e. the owner must re-arm its timer for deadline_of(handle).
        """
        cdef int64_t deadline_ns = <int64_t>(now_s * 1e9) + delay_ns
        handle = self.add(deadline_ns, obj)
        if deadline_ns < self.armed_ns:
            return ~handle
        return handle

    def remove(self, uint64_t handle):
        """Retire an entry. Returns True if it had fired (pop_expired handed it out), else False.

        A handle is retired exactly once; a second remove is a programming error.
        """
        cdef uint32_t slot = <uint32_t>(handle & 0xFFFFFFFF)
        cdef uint32_t gen = <uint32_t>(handle >> 32)
        cdef unsigned char state
        assert slot < self._slots_cap and self._gen[slot] == gen, "stale deadline handle"
        state = self._state[slot]
        assert state != _FREE, "deadline handle removed twice"
        if state == _LIVE:
            self.live -= 1
            self.removed += 1
        self._state[slot] = _FREE
        # 31-bit generations keep handles below 2**63, so ~handle is a negative int64.
        self._gen[slot] = (gen + 1) & 0x7FFFFFFF
        self._objs[slot] = None
        self._free[self._free_len] = slot
        self._free_len += 1
        return state == _FIRED

    def fired(self, uint64_t handle):
        """True if the entry is still held (not removed) and has fired."""
        cdef uint32_t slot = <uint32_t>(handle & 0xFFFFFFFF)
        return (slot < self._slots_cap and self._gen[slot] == <uint32_t>(handle >> 32)
                and self._state[slot] == _FIRED)

    def deadline_of(self, uint64_t handle):
        cdef uint32_t slot = <uint32_t>(handle & 0xFFFFFFFF)
        assert slot < self._slots_cap and self._gen[slot] == <uint32_t>(handle >> 32)
        return self._slot_deadline[slot]

    def next_deadline(self):
        """The earliest live deadline, or None when nothing is live (drops stale roots)."""
        while self._heap_len > 0 and not self._node_live(&self._heap[0]):
            self._pop_root()
        if self._heap_len == 0:
            return None
        return self._heap[0].deadline_ns

    def pop_expired(self, int64_t now_ns):
        """Mark every live entry with deadline <= now_ns FIRED; return their objects, earliest
        first. The entries stay held until remove(handle)."""
        cdef list out = []
        cdef HeapNode node
        while self._heap_len > 0:
            node = self._heap[0]
            if not self._node_live(&node):
                self._pop_root()
                continue
            if node.deadline_ns > now_ns:
                break
            self._pop_root()
            self._state[node.slot] = _FIRED
            self.live -= 1
            self.expired += 1
            out.append(self._objs[node.slot])
        return out

    @property
    def heap_len(self):
        return self._heap_len
