# cython: language_level=3
# The typed interface of zkfast._core, for compiled siblings that ``cimport`` it.
# Python callers (and mypy) see _core.pyi instead. Calls are coarse: a whole record, a whole
# frame; the byte-order helpers are inline so a sibling's tight loop stays C.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from cpython.object cimport PyObject

# Jute type codes of a layout field spec (name, code, sub); same values as the T_* constants.
cdef enum:
    C_INT = 1
    C_LONG = 2
    C_BOOL = 3
    C_USTRING = 4
    C_BUFFER = 5
    C_VECTOR = 6
    C_RECORD = 7
    C_BYTE = 8

cdef enum:
    INT32_MAX_C = 2147483647


# Big-endian reads and writes; the caller has checked the bytes are there.
cdef inline int32_t rd32(const unsigned char* p) noexcept nogil:
    return <int32_t>((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
                     | (<uint32_t>p[2] << 8) | <uint32_t>p[3])


cdef inline int64_t rd64(const unsigned char* p) noexcept nogil:
    return <int64_t>((<uint64_t><uint32_t>rd32(p) << 32) | <uint64_t><uint32_t>rd32(p + 4))


cdef inline void wr32(unsigned char* p, int32_t v) noexcept nogil:
    cdef uint32_t u = <uint32_t>v
    p[0] = <unsigned char>(u >> 24)
    p[1] = <unsigned char>(u >> 16)
    p[2] = <unsigned char>(u >> 8)
    p[3] = <unsigned char>u


cdef inline void wr64(unsigned char* p, int64_t v) noexcept nogil:
    cdef uint64_t u = <uint64_t>v
    wr32(p, <int32_t><uint32_t>(u >> 32))
    wr32(p + 4, <int32_t><uint32_t>u)


# The nesting of the field being decoded, kept on the C stack; error names are built from it
# only when a ProtocolError is raised.
cdef struct Scope:
    Scope* parent
    PyObject* name        # borrowed: the enclosing record's or vector's field name
    Py_ssize_t index      # vector element index, or -1 for a nested record


# The bytes one decode call reads: [p, p + end). Offsets are relative to p.
cdef struct Source:
    const unsigned char* p
    Py_ssize_t end


# Decode one field spec / one layout at pos[0]; advance pos[0]. Raise ProtocolError.
cdef object decode_value(Source* src, object spec, Py_ssize_t* pos, Scope* scope)
cdef tuple decode_fields(Source* src, object layout, Py_ssize_t* pos, Scope* scope)

# Range-check a Python int and narrow it (OverflowError/TypeError as the pure twin).
cdef int64_t as_int(str name, object value, int64_t lo, int64_t hi, str what) except? -1


# A growable C buffer for one encode call; appended to the caller's bytearray at the end, so
# a failed encode leaves the caller's output untouched. In bytes mode (``to_bytes``) the
# buffer is the storage of a bytes object under construction (grown with _PyBytes_Resize),
# which ``take_bytes`` hands out without a copy.
cdef class Writer:
    cdef unsigned char* data
    cdef Py_ssize_t size
    cdef Py_ssize_t cap
    cdef PyObject* blob           # bytes mode: the bytes object being built (owned); else NULL

    cdef unsigned char* room(self, Py_ssize_t n) except NULL
    cdef int i32(self, int32_t v) except -1
    cdef int i64(self, int64_t v) except -1
    cdef int raw(self, const unsigned char* p, Py_ssize_t n) except -1
    cdef int text(self, str value) except -1
    cdef int put(self, const unsigned char* p, Py_ssize_t n) except -1
    cdef int text_bytes(self, str value) except -1
    cdef int java_text(self, str value, bint prefixed) except -1
    cdef int value(self, object spec, object value) except -1
    cdef int fields(self, object layout, object values) except -1
    cdef int stat(self, object stat) except -1
    cdef int append_to(self, bytearray out) except -1
    cdef int to_bytes(self, Py_ssize_t cap) except -1
    cdef bytes take_bytes(self)


# The leader's outstanding proposals and their ack sets. Slots [head, tail) of the C arrays
# hold the proposals in zxid order; each slot's ``stride`` words of ``state`` are the ack
# bitmask over voter indexes (``words`` words), the weight acked per group, and the number
# of groups that count.
cdef class AckTracker:
    cdef readonly int64_t last_committed
    cdef readonly int64_t last_proposed
    cdef public object committed_acks
    cdef Py_ssize_t n_voters
    cdef Py_ssize_t n_groups
    cdef Py_ssize_t words
    cdef Py_ssize_t stride
    cdef int64_t groups_min
    cdef int64_t* voter_sid       # sorted ascending
    cdef Py_ssize_t* voter_group
    cdef int64_t* voter_weight
    cdef int64_t* group_half
    cdef int64_t* upto            # per voter: it acked every outstanding zxid <= upto
    cdef int64_t* zxids
    cdef int64_t* state
    cdef list data                # payloads, same slots as zxids
    cdef Py_ssize_t head
    cdef Py_ssize_t tail
    cdef Py_ssize_t cap

    cdef Py_ssize_t voter(self, object sid) except -2
    cdef Py_ssize_t first_above(self, int64_t zxid) noexcept
    cdef void add_ack(self, Py_ssize_t slot, Py_ssize_t v) noexcept
    cdef void remove_ack(self, Py_ssize_t slot, Py_ssize_t v) noexcept
    cdef bint has_quorum(self, Py_ssize_t slot) noexcept
    cdef frozenset acked(self, Py_ssize_t slot)
    cdef int make_room(self) except -1


# One znode: data, ACL list, children dict and the persisted stat as C fields. Not tracked by
# the cyclic collector (a znode never refers back up the tree).
cdef class ZNode:
    cdef public object data
    cdef public object acl
    cdef public int64_t czxid
    cdef public int64_t mzxid
    cdef public int64_t ctime
    cdef public int64_t mtime
    cdef public int64_t ephemeral_owner
    cdef public int64_t pzxid
    cdef public int32_t version
    cdef public int32_t cversion
    cdef public int32_t aversion
    cdef bint has_digest
    cdef uint32_t digest_value
    cdef dict kids                # None: no children (most znodes are leaves)
