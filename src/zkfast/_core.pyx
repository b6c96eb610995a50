# cython: language_level=3
# distutils: libraries = z
"""Compiled hot paths of zkfast: frames, jute records, per-request fast paths, zxids.

This module is the fast build of ``_core_py`` and must behave identically: same results, same
exception classes, same ``ProtocolError`` field/offset/expected/found (the property tests run
both on random input). ``_core_py`` holds the reference docstrings; this file says only where
the C level needs care:

* Every read goes through ``const unsigned char*`` with an explicit bytes-left check first;
  lengths and counts are checked against the bytes left before anything is allocated.
* C integers wrap, Python ints do not: every Python int is range-checked before it is narrowed
  to int32/int64, with the same OverflowError messages as the twin.
* Field names for errors are built only on the error path, from a chain of ``Scope`` structs on
  the C stack (record and vector-element nesting), so the hot path never formats strings.
* Encoders write into a private growable C buffer and append to ``out`` once, so a failure
  leaves ``out`` untouched.
* ``node_digest`` calls zlib's ``crc32`` directly (the extension links libz, the library
  Python's own ``zlib`` module wraps, so the values are the same by construction).
  ``encode_snapshot_nodes`` walks the tree in C but reads znodes through their attributes,
  so any object shaped like a ``ZNode`` works, as in the twin. ``encode_snapshot`` builds its
  stream inside the bytes object it returns (``Writer.to_bytes``: ``_PyBytes_Resize`` while
  the object is ours alone), so the stream is never copied.
* ``SnapshotLoader`` checks each length against the bytes there before it allocates
  anything, creates ``ZNode``s without ``__init__`` and fills their C fields from the record,
  and finds a parent on its chain of ancestors (memcmp of ASCII path bytes) before it falls
  back to the twin's dict lookup; see its docstring for why the two always agree.
* ``count_quorum`` works on the caller's dicts (sids are arbitrary longs and nothing is kept
  between calls); it skips the de-duplication set for set input and the per-group dict when
  there is one group (every majority verifier).

No global state, no IO, no clock.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport Py_TYPE, PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsEncodedString, PyUnicode_DecodeUTF8
from libc.stdint cimport (
    INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, int32_t, int64_t, uint32_t, uint64_t,
)
from libc.string cimport memcmp, memcpy, memmove, memset

from operator import index as _index
from types import MappingProxyType

cimport cython


class _SlotProbe:
    __slots__ = ("member",)


cdef object _MEMBER_DESCRIPTOR = type(_SlotProbe.__dict__["member"])


cdef extern from "zlib.h":
    unsigned long crc32(unsigned long crc, const unsigned char* buf, unsigned int length) nogil
    unsigned long adler32(unsigned long adler, const unsigned char* buf,
                          unsigned int length) nogil


cdef extern from "structmember.h":
    # A ``__slots__`` member: its type code and byte offset in the instance (CPython 3.11).
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    int T_OBJECT_EX


cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    int _PyBytes_Resize(PyObject** blob, Py_ssize_t size) except -1
    int PyUnicode_IS_ASCII(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    Py_ssize_t PyUnicode_FindChar(object text, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2
    object PyUnicode_Substring(object text, Py_ssize_t start, Py_ssize_t end)
    object PyUnicode_AsUTF8String(object text)
    PyObject* PyDict_SetDefault(object d, object key, object value) except NULL
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    int PyUnicode_KIND(object text)
    int PyUnicode_4BYTE_KIND

__all__ = [
    "ProtocolError",
    "T_INT",
    "T_LONG",
    "T_BOOL",
    "T_USTRING",
    "T_BUFFER",
    "T_VECTOR",
    "T_RECORD",
    "T_BYTE",
    "split_frames",
    "decode_record",
    "encode_record",
    "decode_request_header",
    "encode_reply_frame",
    "encode_stat",
    "java_utf8",
    "STAT_BYTES",
    "STAT_LAYOUT",
    "REPLY_HEADER_BYTES",
    "make_zxid",
    "zxid_epoch",
    "zxid_counter",
    "vote_greater",
    "count_quorum",
    "AckTracker",
    "encode_snapshot_nodes",
    "encode_snapshot",
    "SnapshotLoader",
    "node_digest",
    "ZNode",
    "ZNODE_FIELDS",
    "IMPLEMENTATION",
]

IMPLEMENTATION = "compiled"

T_INT = C_INT
T_LONG = C_LONG
T_BOOL = C_BOOL
T_USTRING = C_USTRING
T_BUFFER = C_BUFFER
T_VECTOR = C_VECTOR
T_RECORD = C_RECORD
T_BYTE = C_BYTE

STAT_BYTES = 68
REPLY_HEADER_BYTES = 16

#: The wire Stat layout; a nested record with this very layout is written by ``_stat_into``.
STAT_LAYOUT = tuple([
    (name, C_LONG if width == 8 else C_INT, None)
    for name, width in (
        ("czxid", 8), ("mzxid", 8), ("ctime", 8), ("mtime", 8), ("version", 4),
        ("cversion", 4), ("aversion", 4), ("ephemeralOwner", 8), ("dataLength", 4),
        ("numChildren", 4), ("pzxid", 8),
    )
])
cdef tuple _STAT_LAYOUT = STAT_LAYOUT


class ProtocolError(ValueError):
    """Malformed outside input: names the field, the offset, what was expected and found."""

    def __init__(self, field, offset, expected, found):
        super().__init__(f"{field} at offset {offset}: expected {expected}, found {found}")
        self.field = field
        self.offset = offset
        self.expected = expected
        self.found = found

    def __reduce__(self):
        return (type(self), (self.field, self.offset, self.expected, self.found))


# --------------------------------------------------------------------------- int narrowing

cdef int64_t as_int(str name, object value, int64_t lo, int64_t hi, str what) except? -1:
    """Range-check a Python int like the twin's ``_check_int`` and narrow it."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        value = _index(value)  # TypeError for floats, strings, None
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < lo or v > hi:
        raise OverflowError(f"{name}: {value} does not fit in {what}")
    return v


# --------------------------------------------------------------------------- frames

cdef inline int _get_buffer(object buf, Py_buffer* view) except -1:
    PyObject_GetBuffer(buf, view, PyBUF_SIMPLE)
    return 0


cdef inline int _read_view(object buf, Py_buffer* view) except -1:
    """Point ``view`` at the bytes of ``buf``; returns 1 if it must be released, else 0.

    ``bytes`` (every frame ``split_frames`` returns) is immutable and read in place; anything
    else goes through the buffer protocol, which pins a bytearray's size while we read it.
    """
    if type(buf) is bytes:
        view.buf = <void*>PyBytes_AS_STRING(buf)
        view.len = PyBytes_GET_SIZE(buf)
        return 0
    PyObject_GetBuffer(buf, view, PyBUF_SIMPLE)
    return 1


def split_frames(buf, Py_ssize_t offset, frame_bytes_max):
    """Cut every complete length-prefixed frame out of ``buf`` starting at ``offset``."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t end, pos, n
    cdef int64_t limit
    cdef list frames = []
    cdef int owned
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    # A limit beyond int32 admits every non-negative length, as in the twin.
    limit = frame_bytes_max if frame_bytes_max < INT32_MAX_C else INT32_MAX_C
    owned = _read_view(buf, &view)
    try:
        p = <const unsigned char*>view.buf
        end = view.len
        pos = offset
        while end - pos >= 4:
            n = rd32(p + pos)
            if n < 0 or n > limit:
                raise ProtocolError("frame.length", pos, f"0..{frame_bytes_max}", str(n))
            if end - pos - 4 < n:
                break
            frames.append(PyBytes_FromStringAndSize(<const char*>(p + pos + 4), n))
            pos += 4 + n
    finally:
        if owned:
            PyBuffer_Release(&view)
    return frames, pos


# --------------------------------------------------------------------------- jute decode

cdef str _prefix(Scope* scope):
    if scope == NULL:
        return ""
    cdef str head = _prefix(scope.parent) + <str>scope.name
    if scope.index >= 0:
        return f"{head}[{scope.index}]."
    return head + "."


cdef str _field(Scope* scope, object name):
    return _prefix(scope) + name


cdef int _need(Scope* scope, object name, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t n,
               str what) except -1:
    if end - pos < n:
        raise ProtocolError(_field(scope, name), pos, f"{n} bytes of {what}",
                            f"{end - pos if end > pos else 0} bytes left")
    return 0


cdef object decode_value(Source* src, object spec, Py_ssize_t* pos, Scope* scope):
    cdef object name, sub, v
    cdef long code
    cdef Py_ssize_t at = pos[0], i
    cdef Py_ssize_t end = src.end
    cdef const unsigned char* p = src.p
    cdef int32_t n
    cdef Scope inner
    cdef list items
    if type(spec) is not tuple or len(<tuple>spec) != 3:
        raise ValueError(f"layout field spec must be a (name, code, sub) tuple: {spec!r}")
    name = (<tuple>spec)[0]
    code = (<tuple>spec)[1]
    sub = (<tuple>spec)[2]
    if code == C_INT:
        _need(scope, name, at, end, 4, "int")
        pos[0] = at + 4
        return rd32(p + at)
    if code == C_LONG:
        _need(scope, name, at, end, 8, "long")
        pos[0] = at + 8
        return rd64(p + at)
    if code == C_BOOL:
        _need(scope, name, at, end, 1, "boolean")
        pos[0] = at + 1
        return p[at] != 0
    if code == C_BYTE:
        _need(scope, name, at, end, 1, "byte")
        pos[0] = at + 1
        return <signed char>p[at]
    if code == C_USTRING or code == C_BUFFER:
        _need(scope, name, at, end, 4, "length")
        n = rd32(p + at)
        if n == -1:
            pos[0] = at + 4
            return None
        if n < 0 or n > end - at - 4:
            raise ProtocolError(_field(scope, name) + ".length", at, f"-1..{end - at - 4}",
                                str(n))
        pos[0] = at + 4 + n
        if code == C_USTRING:
            return PyUnicode_DecodeUTF8(<const char*>(p + at + 4), n, "replace")
        return PyBytes_FromStringAndSize(<const char*>(p + at + 4), n)
    if code == C_VECTOR:
        _need(scope, name, at, end, 4, "count")
        n = rd32(p + at)
        if n == -1:
            pos[0] = at + 4
            return None
        # Every element takes at least one byte, so a count above the bytes left is a lie;
        # checking it first bounds the list allocated below by the frame size.
        if n < 0 or n > end - at - 4:
            raise ProtocolError(_field(scope, name) + ".count", at, f"-1..{end - at - 4}",
                                str(n))
        pos[0] = at + 4
        inner.parent = scope
        inner.name = <PyObject*>name
        items = PyList_New(n)
        for i in range(n):
            inner.index = i
            v = decode_value(src, sub, pos, &inner)
            Py_INCREF(v)
            PyList_SET_ITEM(items, i, v)
        return items
    if code == C_RECORD:
        inner.parent = scope
        inner.name = <PyObject*>name
        inner.index = -1
        return decode_fields(src, sub, pos, &inner)
    raise ProtocolError(_field(scope, name), at, "a known jute type", f"type code {code}")


cdef tuple decode_fields(Source* src, object layout, Py_ssize_t* pos, Scope* scope):
    cdef tuple lay = <tuple?>layout
    cdef Py_ssize_t i, k = len(lay)
    cdef tuple out = PyTuple_New(k)
    cdef object v
    for i in range(k):
        v = decode_value(src, lay[i], pos, scope)
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, i, v)
    return out


def decode_record(layout, buf, Py_ssize_t offset=0, Py_ssize_t end=-1):
    """Decode one record of ``layout`` from ``buf[offset:end]``; returns (values, new_offset)."""
    cdef Py_buffer view
    cdef Source src
    cdef Py_ssize_t pos = offset
    cdef tuple values
    cdef int owned
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    owned = _read_view(buf, &view)
    try:
        src.p = <const unsigned char*>view.buf
        src.end = view.len if end < 0 or end > view.len else end
        values = decode_fields(&src, layout, &pos, NULL)
    finally:
        if owned:
            PyBuffer_Release(&view)
    return values, pos


def decode_request_header(frame):
    """Return ``(xid, type)`` of a request frame (the payload, without its length prefix)."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t n
    cdef int32_t xid, type_
    cdef int owned = _read_view(frame, &view)
    p = <const unsigned char*>view.buf
    n = view.len
    if n >= 8:
        xid = rd32(p)
        type_ = rd32(p + 4)
        if owned:
            PyBuffer_Release(&view)
        return xid, type_
    if owned:
        PyBuffer_Release(&view)
    if n < 4:
        raise ProtocolError("xid", 0, "4 bytes of int", f"{n} bytes left")
    raise ProtocolError("type", 4, "4 bytes of int", f"{n - 4} bytes left")


# --------------------------------------------------------------------------- jute encode

def java_utf8(str text):
    """``text`` encoded as Java's jute writer does: UTF-8 per UTF-16 code unit (CESU-8)."""
    if PyUnicode_KIND(text) == PyUnicode_4BYTE_KIND:
        text = "".join([
            c if c <= "\uffff" else chr(0xD7C0 + (ord(c) >> 10)) + chr(0xDC00 + (ord(c) & 0x3FF))
            for c in text
        ])
    return PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass")


cdef class Writer:
    """A growable C buffer for one encode call; appended to the caller's output at the end."""

    def __cinit__(self):
        self.data = <unsigned char*>PyMem_Malloc(256)
        if self.data == NULL:
            raise MemoryError()
        self.cap = 256
        self.size = 0

    def __dealloc__(self):
        if self.blob != NULL:
            Py_XDECREF(self.blob)
        else:
            PyMem_Free(self.data)

    cdef unsigned char* room(self, Py_ssize_t n) except NULL:
        cdef Py_ssize_t cap
        cdef unsigned char* grown
        if self.cap - self.size < n:
            cap = self.cap * 2
            while cap - self.size < n:
                cap *= 2
            if self.blob != NULL:
                # The object is ours alone (refcount 1), as _PyBytes_Resize requires; a big
                # block grows in place (realloc / mremap) rather than by a copy.
                try:
                    _PyBytes_Resize(&self.blob, cap)
                finally:
                    if self.blob == NULL:  # failed: the API has freed the object
                        self.data = NULL
                        self.cap = self.size = 0
                self.data = <unsigned char*>PyBytes_AS_STRING(<object>self.blob)
                self.cap = cap
                return self.data + self.size
            grown = <unsigned char*>PyMem_Realloc(self.data, cap)
            if grown == NULL:
                raise MemoryError()
            self.data = grown
            self.cap = cap
        return self.data + self.size

    cdef int to_bytes(self, Py_ssize_t cap) except -1:
        """Switch an empty writer to bytes mode with room for ``cap`` bytes."""
        cdef object blob
        assert self.size == 0 and self.blob == NULL
        blob = PyBytes_FromStringAndSize(NULL, cap if cap > 256 else 256)
        PyMem_Free(self.data)
        Py_INCREF(blob)
        self.blob = <PyObject*>blob
        self.data = <unsigned char*>PyBytes_AS_STRING(blob)
        self.cap = cap if cap > 256 else 256
        return 0

    cdef bytes take_bytes(self):
        """The bytes written so far, as the bytes object itself (bytes mode); the writer is
        left empty and unusable."""
        cdef bytes out
        assert self.blob != NULL
        try:
            _PyBytes_Resize(&self.blob, self.size)
        finally:
            if self.blob == NULL:
                self.data = NULL
                self.cap = self.size = 0
        out = <bytes>self.blob
        Py_XDECREF(self.blob)
        self.blob = NULL
        self.data = NULL
        self.cap = self.size = 0
        return out

    cdef int i32(self, int32_t v) except -1:
        wr32(self.room(4), v)
        self.size += 4
        return 0

    cdef int i64(self, int64_t v) except -1:
        wr64(self.room(8), v)
        self.size += 8
        return 0

    cdef int raw(self, const unsigned char* p, Py_ssize_t n) except -1:
        cdef unsigned char* dst
        if n > INT32_MAX_C:
            raise OverflowError(f"{n} bytes do not fit in a jute length")
        dst = self.room(4 + n)
        wr32(dst, <int32_t>n)
        memcpy(dst + 4, p, n)
        self.size += 4 + n
        return 0

    cdef int value(self, object spec, object value) except -1:
        cdef object name, sub
        cdef long code
        cdef Py_buffer view
        if type(spec) is tuple and len(<tuple>spec) == 3:
            name = (<tuple>spec)[0]
            code = (<tuple>spec)[1]
            sub = (<tuple>spec)[2]
        else:
            name, code, sub = spec
        if code == C_INT:
            self.i32(<int32_t>as_int(name, value, INT32_MIN, INT32_MAX, "an int"))
        elif code == C_LONG:
            self.i64(as_int(name, value, INT64_MIN, INT64_MAX, "a long"))
        elif code == C_BOOL:
            self.room(1)[0] = 1 if value else 0
            self.size += 1
        elif code == C_BYTE:
            self.room(1)[0] = <unsigned char>(as_int(name, value, -128, 255, "a byte") & 0xFF)
            self.size += 1
        elif code == C_USTRING:
            if value is None:
                self.i32(-1)
            elif type(value) is not str and not isinstance(value, str):
                raise TypeError(
                    f"{name}: ustring needs str or None, got {type(value).__name__}")
            else:
                self.text(value)
        elif code == C_BUFFER:
            if value is None:
                self.i32(-1)
            elif isinstance(value, str):
                raise TypeError(f"{name}: buffer needs a bytes-like object or None, got str")
            elif type(value) is bytes:
                self.raw(<const unsigned char*>PyBytes_AS_STRING(value), len(<bytes>value))
            else:
                _get_buffer(value, &view)
                try:
                    self.raw(<const unsigned char*>view.buf, view.len)
                finally:
                    PyBuffer_Release(&view)
        elif code == C_VECTOR:
            if value is None:
                self.i32(-1)
            else:
                self.i32(<int32_t>len(value))
                for item in value:
                    self.value(sub, item)
        elif code == C_RECORD:
            if sub is _STAT_LAYOUT:
                self.stat(value)
            else:
                self.fields(sub, value)
        else:
            raise ValueError(f"{name}: unknown jute type code {code}")
        return 0

    cdef int text(self, str value) except -1:
        return self.java_text(value, True)

    cdef int put(self, const unsigned char* p, Py_ssize_t n) except -1:
        memcpy(self.room(n), p, n)
        self.size += n
        return 0

    cdef int text_bytes(self, str value) except -1:
        """``value`` encoded as ``text`` encodes it, without the length."""
        return self.java_text(value, False)

    cdef int java_text(self, str value, bint prefixed) except -1:
        """``value``'s bytes as Java's writer makes them, after their length if ``prefixed``."""
        cdef const char* utf8 = NULL
        cdef Py_ssize_t n = 0
        cdef bytes raw = None
        if PyUnicode_KIND(value) == PyUnicode_4BYTE_KIND:
            # Characters beyond U+FFFF: Java writes their surrogates separately (CESU-8).
            raw = java_utf8(value)
        else:
            try:
                # Exact UTF-8 (cached inside the str object; free for ASCII).
                utf8 = PyUnicode_AsUTF8AndSize(value, &n)
            except UnicodeEncodeError:
                # Lone surrogates: written as their 3-byte forms, as Java's writer does.
                raw = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass")
        if raw is not None:
            utf8 = PyBytes_AS_STRING(raw)
            n = PyBytes_GET_SIZE(raw)
        if prefixed:
            return self.raw(<const unsigned char*>utf8, n)
        return self.put(<const unsigned char*>utf8, n)

    cdef int fields(self, object layout, object values) except -1:
        cdef Py_ssize_t i, k = len(layout)
        if len(values) != k:
            raise ValueError(f"record needs {k} values, got {len(values)}")
        if type(layout) is tuple and (type(values) is tuple or type(values) is list):
            for i in range(k):
                self.value((<tuple>layout)[i], values[i])
        else:
            for spec, value in zip(layout, values):
                self.value(spec, value)
        return 0

    cdef int stat(self, object stat) except -1:
        _stat_into(stat, self.room(68))
        self.size += 68
        return 0

    cdef int append_to(self, bytearray out) except -1:
        cdef Py_ssize_t old = PyByteArray_GET_SIZE(out)
        if PyByteArray_Resize(out, old + self.size) < 0:
            return -1
        memcpy(PyByteArray_AS_STRING(out) + old, self.data, self.size)
        return 0


cdef int _stat_into(object stat, unsigned char* p) except -1:
    """Write the 68-byte wire Stat of an 11-value sequence at ``p``."""
    cdef Py_ssize_t i
    cdef tuple names = _STAT_NAMES
    if len(stat) != 11:
        raise ValueError(f"record needs 11 values, got {len(stat)}")
    for i in range(11):
        if i == 4 or i == 5 or i == 6 or i == 8 or i == 9:
            wr32(p, <int32_t>as_int(names[i], stat[i], INT32_MIN, INT32_MAX, "an int"))
            p += 4
        else:
            wr64(p, as_int(names[i], stat[i], INT64_MIN, INT64_MAX, "a long"))
            p += 8
    return 0


cdef tuple _STAT_NAMES = (
    "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeralOwner",
    "dataLength", "numChildren", "pzxid",
)


def encode_record(layout, values, bytearray out not None):
    """Append the jute encoding of ``values`` (a sequence matching ``layout``) to ``out``."""
    cdef Writer w = Writer.__new__(Writer)
    w.fields(layout, values)
    w.append_to(out)


def encode_stat(stat, bytearray out not None):
    """Append the 68-byte wire Stat (11 fields, ``STAT`` layout order) to ``out``."""
    cdef unsigned char buf[68]
    cdef Py_ssize_t old
    _stat_into(stat, buf)
    old = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, old + 68)
    memcpy(PyByteArray_AS_STRING(out) + old, buf, 68)


def encode_reply_frame(xid, zxid, err, layout, body):
    """One reply frame: int32 length, ReplyHeader ``(xid, zxid, err)``, then ``body``."""
    cdef int32_t x = <int32_t>as_int("xid", xid, INT32_MIN, INT32_MAX, "an int")
    cdef int64_t z = as_int("zxid", zxid, INT64_MIN, INT64_MAX, "a long")
    cdef int32_t e = <int32_t>as_int("err", err, INT32_MIN, INT32_MAX, "an int")
    cdef Writer w
    cdef unsigned char head[20]
    if (layout is None) != (body is None):
        raise ValueError("reply layout and body must both be given or both be None")
    if layout is None:
        wr32(head, 16)
        wr32(head + 4, x)
        wr64(head + 8, z)
        wr32(head + 16, e)
        return PyBytes_FromStringAndSize(<const char*>head, 20)
    w = Writer.__new__(Writer)
    w.room(20)
    w.size = 20
    w.fields(layout, body)
    if w.size - 4 > INT32_MAX_C:
        raise OverflowError(f"reply of {w.size - 4} bytes does not fit in a frame")
    wr32(w.data, <int32_t>(w.size - 4))
    wr32(w.data + 4, x)
    wr64(w.data + 8, z)
    wr32(w.data + 16, e)
    return PyBytes_FromStringAndSize(<const char*>w.data, w.size)


# --------------------------------------------------------------------------- zxid

cdef int64_t _zxid_arg(object zxid) except? -1:
    cdef int64_t z = 0
    cdef int overflow = 0
    if type(zxid) is not int:
        zxid = _index(zxid)  # TypeError for floats, strings, None
    try:
        z = zxid
    except OverflowError:
        overflow = 1
    if overflow:
        raise OverflowError(f"zxid {zxid} does not fit in 64 bits")
    return z


def make_zxid(epoch, counter):
    """Return the zxid ``epoch << 32 | counter``; both halves must fit in 32 bits."""
    cdef int64_t e = _half(epoch, "epoch")
    cdef int64_t c = _half(counter, "counter")
    return <int64_t>((<uint64_t>e << 32) | <uint64_t>c)


cdef int64_t _half(object v, str what) except? -1:
    cdef int64_t x = -1
    if type(v) is not int:
        v = _index(v)  # TypeError for floats, strings, None
    try:
        x = v
    except OverflowError:
        x = -1
    if x < 0 or x > 0xFFFFFFFF:
        raise OverflowError(f"{what} {v} does not fit in 32 bits")
    return x


def zxid_epoch(zxid):
    """The epoch half of a zxid (``zxid >> 32`` as ZooKeeper computes it, signed)."""
    return _zxid_arg(zxid) >> 32


def zxid_counter(zxid):
    """The counter half of a zxid (its low 32 bits)."""
    return <uint32_t>(<uint64_t>_zxid_arg(zxid) & 0xFFFFFFFF)


# --------------------------------------------------------------------------- votes and quorums


def vote_greater(new_id, new_zxid, new_epoch, cur_id, cur_zxid, cur_epoch, new_weight=1):
    """FastLeaderElection.totalOrderPredicate: is the vote (new_*) better than (cur_*)?"""
    # Narrowed one by one as the twin checks them, so the same argument is named on error.
    cdef int64_t n_id = as_int("new_id", new_id, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t n_zxid = as_int("new_zxid", new_zxid, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t n_epoch = as_int("new_epoch", new_epoch, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t c_id = as_int("cur_id", cur_id, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t c_zxid = as_int("cur_zxid", cur_zxid, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t c_epoch = as_int("cur_epoch", cur_epoch, INT64_MIN, INT64_MAX, "a long")
    cdef int64_t weight = as_int("new_weight", new_weight, INT64_MIN, INT64_MAX, "a long")
    if weight == 0:
        return False
    if n_epoch != c_epoch:
        return n_epoch > c_epoch
    if n_zxid != c_zxid:
        return n_zxid > c_zxid
    return n_id > c_id


def count_quorum(sids, dict member_group not None, dict member_weight not None,
                 dict group_half not None, Py_ssize_t groups_min):
    """Does the set ``sids`` hold a quorum? (see the pure twin for the arguments)."""
    cdef dict acked
    cdef set seen = None
    cdef Py_ssize_t counted = 0
    cdef bint any_sid = False
    cdef object gid, sid, weight, only_gid, only_half, total = 0
    cdef Py_ssize_t dict_pos = 0
    cdef PyObject* key
    cdef PyObject* value
    # A set needs no de-duplication (the ack trackers pass sets).
    if type(sids) is not set and type(sids) is not frozenset:
        seen = set()
    if len(group_half) == 1:
        # One group (every QuorumMaj, and a one-group hierarchy): a running sum, no dict.
        PyDict_Next(group_half, &dict_pos, &key, &value)
        only_gid = <object>key
        only_half = <object>value
        for sid in sids:
            if seen is not None:
                if sid in seen:
                    continue
                seen.add(sid)
            any_sid = True
            gid = member_group.get(sid)
            if gid is None:
                continue
            if gid != only_gid:
                raise KeyError(gid)  # as group_half[gid] does in the twin
            total = total + member_weight[sid]
        if not any_sid:
            return False
        return (1 if total > only_half else 0) >= groups_min
    acked = {}
    for sid in sids:
        if seen is not None:
            if sid in seen:
                continue
            seen.add(sid)
        any_sid = True
        gid = member_group.get(sid)
        if gid is None:
            continue
        acked[gid] = acked.get(gid, 0) + member_weight[sid]
    if not any_sid:
        return False
    for gid, weight in acked.items():
        if weight > group_half[gid]:
            counted += 1
    return counted >= groups_min


# --------------------------------------------------------------------------- proposal acks

cdef int64_t _clamped(object value) except? -1:
    """A Python int as int64, saturated: a zxid beyond a long compares like the nearest one."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        value = _index(value)
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow > 0:
        return INT64_MAX
    if overflow < 0:
        return INT64_MIN
    return v


cdef class AckTracker:
    """The leader's outstanding proposals and their acks (see the pure twin).

    An ack is one bit and one addition: each voter has an index (its place among the sorted
    voter sids) and each proposal keeps the weight acked per group and how many groups count,
    so a quorum check is one comparison. ``upto[v]`` lets ``ack_upto`` skip what voter ``v``
    has acked already: a leader's own ack after each fsync costs only the new proposals.
    """

    def __init__(self, dict member_group not None, dict member_weight not None,
                 dict group_half not None, groups_min, *, last_committed):
        cdef dict group_index = {}
        cdef dict summed = {}
        cdef list voters = []
        cdef Py_ssize_t i, n
        cdef object sid, gid, half, w
        if self.voter_sid != NULL:
            raise RuntimeError("AckTracker is initialized once")
        self.groups_min = as_int("groups_min", groups_min, INT64_MIN, INT64_MAX, "a long")
        self.last_committed = as_int("last_committed", last_committed, INT64_MIN, INT64_MAX,
                                     "a long")
        self.last_proposed = self.last_committed
        for gid, half in group_half.items():
            as_int("group_half", half, INT64_MIN, INT64_MAX, "a long")
            group_index[gid] = len(group_index)
        for sid, gid in member_group.items():
            as_int("sid", sid, INT64_MIN, INT64_MAX, "a long")
            if gid not in group_half:
                raise KeyError(gid)
            w = as_int("weight", member_weight[sid], 0, INT64_MAX, "a long")
            summed[gid] = summed.get(gid, 0) + w
            if summed[gid] > INT64_MAX:
                raise OverflowError(f"weight: group {gid} sums to more than a long")
            voters.append((int(sid), group_index[gid], int(w)))
        voters.sort()
        n = len(voters)
        self.n_voters = n
        self.n_groups = len(group_index)
        self.words = (n + 63) // 64 if n else 1
        self.stride = self.words + self.n_groups + 1
        self.voter_sid = <int64_t*>PyMem_Malloc((n + 1) * sizeof(int64_t))
        self.voter_group = <Py_ssize_t*>PyMem_Malloc((n + 1) * sizeof(Py_ssize_t))
        self.voter_weight = <int64_t*>PyMem_Malloc((n + 1) * sizeof(int64_t))
        self.upto = <int64_t*>PyMem_Malloc((n + 1) * sizeof(int64_t))
        self.group_half = <int64_t*>PyMem_Malloc((self.n_groups + 1) * sizeof(int64_t))
        if (self.voter_sid == NULL or self.voter_group == NULL or self.voter_weight == NULL
                or self.upto == NULL or self.group_half == NULL):
            raise MemoryError()
        for i in range(n):
            self.voter_sid[i] = voters[i][0]
            self.voter_group[i] = voters[i][1]
            self.voter_weight[i] = voters[i][2]
            self.upto[i] = INT64_MIN
        for gid, i in group_index.items():
            self.group_half[i] = group_half[gid]
        self.data = []
        self.head = self.tail = self.cap = 0
        self.committed_acks = None

    def __dealloc__(self):
        PyMem_Free(self.voter_sid)
        PyMem_Free(self.voter_group)
        PyMem_Free(self.voter_weight)
        PyMem_Free(self.upto)
        PyMem_Free(self.group_half)
        PyMem_Free(self.zxids)
        PyMem_Free(self.state)

    @property
    def outstanding(self):
        return self.tail - self.head

    cdef Py_ssize_t voter(self, object sid) except -2:
        """The voter index of ``sid``, or -1 when it is not a voting member."""
        cdef int overflow = 0
        cdef long long s
        cdef Py_ssize_t lo = 0, hi = self.n_voters, mid
        if type(sid) is not int:
            sid = _index(sid)
        s = PyLong_AsLongLongAndOverflow(sid, &overflow)
        if overflow:
            return -1
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.voter_sid[mid] < s:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.n_voters and self.voter_sid[lo] == s:
            return lo
        return -1

    cdef Py_ssize_t first_above(self, int64_t zxid) noexcept:
        """The first slot whose zxid is above ``zxid`` (``tail`` when none is)."""
        cdef Py_ssize_t lo = self.head, hi = self.tail, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.zxids[mid] <= zxid:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef void add_ack(self, Py_ssize_t slot, Py_ssize_t v) noexcept:
        cdef int64_t* s = self.state + slot * self.stride
        cdef uint64_t bit = (<uint64_t>1) << (v & 63)
        cdef Py_ssize_t g = self.voter_group[v]
        cdef int64_t before, after
        if (<uint64_t>s[v >> 6]) & bit:
            return
        s[v >> 6] = <int64_t>((<uint64_t>s[v >> 6]) | bit)
        before = s[self.words + g]
        after = before + self.voter_weight[v]
        s[self.words + g] = after
        if before <= self.group_half[g] < after:
            s[self.stride - 1] += 1

    cdef void remove_ack(self, Py_ssize_t slot, Py_ssize_t v) noexcept:
        cdef int64_t* s = self.state + slot * self.stride
        cdef uint64_t bit = (<uint64_t>1) << (v & 63)
        cdef Py_ssize_t g = self.voter_group[v]
        cdef int64_t before, after
        if not ((<uint64_t>s[v >> 6]) & bit):
            return
        s[v >> 6] = <int64_t>((<uint64_t>s[v >> 6]) & ~bit)
        before = s[self.words + g]
        after = before - self.voter_weight[v]
        s[self.words + g] = after
        if after <= self.group_half[g] < before:
            s[self.stride - 1] -= 1

    cdef bint has_quorum(self, Py_ssize_t slot) noexcept:
        cdef int64_t* s = self.state + slot * self.stride
        cdef Py_ssize_t w
        cdef bint any_ack = False
        for w in range(self.words):
            if s[w] != 0:
                any_ack = True
                break
        return any_ack and s[self.stride - 1] >= self.groups_min

    cdef int make_room(self) except -1:
        """Room for one more slot at ``tail``: slide the live slots down or grow."""
        cdef Py_ssize_t live = self.tail - self.head, cap
        cdef void* p
        if self.head > 0 and self.head >= self.cap // 2:
            memmove(self.zxids, self.zxids + self.head, live * sizeof(int64_t))
            memmove(self.state, self.state + self.head * self.stride,
                    live * self.stride * sizeof(int64_t))
            del self.data[:self.head]
            self.head = 0
            self.tail = live
            return 0
        cap = self.cap * 2 if self.cap else 64
        p = PyMem_Realloc(self.zxids, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.zxids = <int64_t*>p
        p = PyMem_Realloc(self.state, cap * self.stride * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self.state = <int64_t*>p
        self.cap = cap
        return 0

    def propose(self, zxid, data):
        cdef int64_t z = as_int("zxid", zxid, INT64_MIN, INT64_MAX, "a long")
        if z <= self.last_proposed:
            raise AssertionError(f"proposal 0x{zxid:x} is not after 0x{self.last_proposed:x}")
        if self.tail == self.cap:
            self.make_room()
        self.zxids[self.tail] = z
        memset(self.state + self.tail * self.stride, 0, self.stride * sizeof(int64_t))
        self.data.append(data)
        self.tail += 1
        self.last_proposed = z

    def ack(self, sid, zxid):
        cdef int overflow = 0
        cdef int64_t z
        cdef Py_ssize_t slot, v
        if type(zxid) is not int:
            zxid = _index(zxid)
        z = PyLong_AsLongLongAndOverflow(zxid, &overflow)
        if overflow:
            return []  # beyond a long: never proposed
        if ((<uint64_t>z) & 0xFFFFFFFF) == 0 or z <= self.last_committed:
            return []
        slot = self.first_above(z) - 1
        if slot < self.head or self.zxids[slot] != z:
            return []
        v = self.voter(sid)
        if v < 0:
            return []
        self.add_ack(slot, v)
        return self.ready()

    def ack_upto(self, sid, zxid):
        cdef Py_ssize_t v = self.voter(sid), slot
        cdef int64_t z, done
        if v >= 0:
            z = _clamped(zxid)
            done = self.upto[v]
            slot = self.first_above(done)
            while slot < self.tail and self.zxids[slot] <= z:
                self.add_ack(slot, v)
                slot += 1
            if z > done:
                self.upto[v] = z if z < self.last_proposed else self.last_proposed
        return self.ready()

    def forget(self, sid, after):
        cdef Py_ssize_t v = self.voter(sid), slot
        cdef int64_t a
        if v < 0:
            return
        a = _clamped(after)
        for slot in range(self.first_above(a), self.tail):
            self.remove_ack(slot, v)
        if a < self.upto[v]:
            self.upto[v] = a

    def ready(self):
        cdef list out = []
        cdef int64_t z
        cdef object acks = self.committed_acks
        while self.head < self.tail and self.has_quorum(self.head):
            z = self.zxids[self.head]
            if z <= self.last_committed:
                raise AssertionError("commits must go up")
            self.last_committed = z
            out.append((z, self.data[self.head]))
            self.data[self.head] = None
            if acks is not None:
                acks.append((z, self.acked(self.head)))
            self.head += 1
        if self.head == self.tail and self.head:
            self.head = self.tail = 0
            del self.data[:]
        return out

    cdef frozenset acked(self, Py_ssize_t slot):
        cdef int64_t* s = self.state + slot * self.stride
        cdef Py_ssize_t v
        cdef list sids = []
        for v in range(self.n_voters):
            if (<uint64_t>s[v >> 6]) & ((<uint64_t>1) << (v & 63)):
                sids.append(self.voter_sid[v])
        return frozenset(sids)

    def after(self, zxid):
        cdef int64_t z = _clamped(zxid)
        cdef Py_ssize_t slot
        cdef list out = []
        for slot in range(self.first_above(z), self.tail):
            out.append((self.zxids[slot], self.data[slot]))
        return out


# --------------------------------------------------------------------------- data tree

#: The attributes of a ``ZNode``, in constructor order (then ``children``).
ZNODE_FIELDS = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                "aversion", "ephemeral_owner", "pzxid", "children")


cdef object _NO_CHILDREN = MappingProxyType({})


@cython.no_gc
cdef class ZNode:
    """One znode (see the twin). The stat lives in C fields, not Python ints.

    The class takes no part in the cyclic garbage collector (``no_gc``): a znode refers only
    to its data, its ACL list and its children dict, never back up the tree, so it can close
    no cycle, and leaving it out means the collector never walks the tree (a children dict
    holding only such nodes stays untracked too). ``_digest`` is None until set.
    """

    def __init__(self, data, acl, int64_t czxid=0, int64_t mzxid=0, int64_t ctime=0,
                 int64_t mtime=0, int32_t version=0, int32_t cversion=0, int32_t aversion=0,
                 int64_t ephemeral_owner=0, int64_t pzxid=0, dict children=None):
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = pzxid
        self.kids = children
        self.has_digest = False

    @property
    def children(self):
        """Child name -> node in link order; a shared read-only empty mapping for a leaf
        (link and unlink children with ``link`` / ``unlink``)."""
        return _NO_CHILDREN if self.kids is None else self.kids

    @children.setter
    def children(self, value):
        if value is None or (type(value) is not dict and not len(value)):
            self.kids = None
        else:
            self.kids = value

    def link(self, str name not None, child):
        """Link ``child`` as ``name`` unless the name is taken; return the node linked
        under ``name`` (``child``, or the one already there)."""
        if self.kids is None:
            self.kids = {name: child}
            return child
        return self.kids.setdefault(name, child)

    def unlink(self, str name not None):
        """Remove the child ``name`` if present; return it (or None)."""
        if self.kids is None:
            return None
        got = self.kids.pop(name, None)
        if not self.kids:
            self.kids = None
        return got

    @property
    def _digest(self):
        return self.digest_value if self.has_digest else None

    @_digest.setter
    def _digest(self, value):
        if value is None:
            self.has_digest = False
        else:
            self.digest_value = <uint32_t>as_int("_digest", value, 0, 0xFFFFFFFF, "a crc32")
            self.has_digest = True

    def stat_persisted(self):
        """The 9-field ``StatPersisted`` tuple (snapshot order)."""
        return (self.czxid, self.mzxid, self.ctime, self.mtime, self.version, self.cversion,
                self.aversion, self.ephemeral_owner, self.pzxid)

    def __reduce__(self):
        node = (self.data, self.acl, self.czxid, self.mzxid, self.ctime, self.mtime,
                self.version, self.cversion, self.aversion, self.ephemeral_owner, self.pzxid,
                self.kids)
        return (ZNode, node, self._digest)

    def __setstate__(self, digest):
        self._digest = digest

    def __repr__(self):
        return (
            f"ZNode(data={self.data!r}, czxid={self.czxid:#x}, mzxid={self.mzxid:#x}, "
            f"pzxid={self.pzxid:#x}, version={self.version}, cversion={self.cversion}, "
            f"aversion={self.aversion}, ephemeral_owner={self.ephemeral_owner:#x}, "
            f"children={sorted(self.children)})"
        )


# The znode attributes the snapshot walk reads, in the order of ``_Slots.off``.
cdef tuple _SNAP_ATTRS = ("data", "acl", "children", "czxid", "mzxid", "ctime", "mtime",
                          "version", "cversion", "aversion", "ephemeral_owner", "pzxid")
cdef enum:
    F_DATA, F_ACL, F_CHILDREN, F_CZXID, F_MZXID, F_CTIME, F_MTIME, F_VERSION, F_CVERSION, \
        F_AVERSION, F_OWNER, F_PZXID, F_COUNT


cdef struct _Slots:
    # Where one znode class keeps each attribute of _SNAP_ATTRS (``__slots__`` members), so
    # the walk reads them as a struct field rather than through getattr. NULL type: none.
    PyObject* type
    Py_ssize_t off[F_COUNT]


cdef int _slots_of(object tp, _Slots* slots) except -1:
    """Fill ``slots`` for instances of ``tp`` when every attribute is a plain slot."""
    cdef object d, klass
    cdef PyMemberDef* member
    cdef Py_ssize_t i
    slots.type = NULL
    if tp.__getattribute__ is not object.__getattribute__:
        return 0
    for i in range(F_COUNT):
        d = None
        for klass in tp.__mro__:
            d = klass.__dict__.get(_SNAP_ATTRS[i])
            if d is not None:
                break
        if type(d) is not _MEMBER_DESCRIPTOR:
            return 0
        member = (<PyMemberDescrObject*>d).d_member
        if member.type != T_OBJECT_EX:
            return 0
        slots.off[i] = member.offset
    slots.type = <PyObject*>tp
    return 0


cdef inline object _attr(object node, _Slots* slots, Py_ssize_t i):
    """``getattr(node, _SNAP_ATTRS[i])``, read straight from the slot when the class allows."""
    cdef PyObject* value
    if <PyObject*>Py_TYPE(node) == slots.type:
        value = (<PyObject**>((<char*><PyObject*>node) + slots.off[i]))[0]
        if value != NULL:
            return <object>value
    return getattr(node, _SNAP_ATTRS[i])  # also raises AttributeError for an unset slot


cdef int _snap_stat_into(object node, _Slots* s, int64_t acl_id, unsigned char* p) except -1:
    """aclId and the 60-byte StatPersisted of ``node`` at ``p`` (68 bytes)."""
    wr64(p, acl_id)
    wr64(p + 8, as_int("czxid", _attr(node, s, F_CZXID), INT64_MIN, INT64_MAX, "a long"))
    wr64(p + 16, as_int("mzxid", _attr(node, s, F_MZXID), INT64_MIN, INT64_MAX, "a long"))
    wr64(p + 24, as_int("ctime", _attr(node, s, F_CTIME), INT64_MIN, INT64_MAX, "a long"))
    wr64(p + 32, as_int("mtime", _attr(node, s, F_MTIME), INT64_MIN, INT64_MAX, "a long"))
    wr32(p + 40, <int32_t>as_int("version", _attr(node, s, F_VERSION), INT32_MIN, INT32_MAX,
                                 "an int"))
    wr32(p + 44, <int32_t>as_int("cversion", _attr(node, s, F_CVERSION), INT32_MIN,
                                 INT32_MAX, "an int"))
    wr32(p + 48, <int32_t>as_int("aversion", _attr(node, s, F_AVERSION), INT32_MIN,
                                 INT32_MAX, "an int"))
    wr64(p + 52, as_int("ephemeralOwner", _attr(node, s, F_OWNER), INT64_MIN, INT64_MAX,
                        "a long"))
    wr64(p + 60, as_int("pzxid", _attr(node, s, F_PZXID), INT64_MIN, INT64_MAX, "a long"))
    return 0


cdef struct _Frame:
    PyObject* children    # borrowed: held by the ``keep`` list of the walk
    Py_ssize_t pos        # PyDict_Next position
    Py_ssize_t base_len   # bytes of the parent's path in the path buffer


@cython.final
cdef class _AclIds:
    """The ACL ids of one snapshot walk: -1 for the object ``open_acl``, else the id of the
    first equal list met (1, 2, ...); ``acls`` holds those first lists in id order."""
    cdef object open_acl
    cdef list acls
    cdef dict by_entries
    cdef dict by_value
    cdef object last            # the last list looked up (held, so its identity is safe)
    cdef int64_t last_id

    def __cinit__(self, open_acl):
        self.open_acl = open_acl
        self.acls = []
        self.by_entries = {}
        self.by_value = {}

    cdef int64_t id_of(self, object acl) except? -2:
        cdef object got, key, flat
        if acl is self.open_acl:
            return -1
        if acl is self.last and self.last is not None:
            # Restored trees share one list per distinct ACL: most nodes hit this.
            return self.last_id
        # tuple(acl) is a cheap key for the usual list of (perms, (scheme, id)) tuples;
        # ids are given by the flattened value, as the twin does.
        try:
            key = tuple(acl)
            got = self.by_entries.get(key)
        except TypeError:
            key = None
            got = None
        if got is None:
            flat = tuple([(perms, scheme, ident) for perms, (scheme, ident) in acl])
            got = self.by_value.get(flat)
            if got is None:
                got = len(self.acls) + 1
                self.by_value[flat] = got
                self.acls.append(acl)
            if key is not None:
                self.by_entries[key] = got
        self.last = acl
        self.last_id = <int64_t>got
        return self.last_id


cdef int _snap_node(Writer w, Writer path, object node, _Slots* slots, _AclIds ids) except -1:
    """One node record: the path in ``path``, then data, aclId and StatPersisted."""
    cdef object data, acl
    cdef int64_t aid
    cdef Py_buffer view
    cdef ZNode zn
    cdef unsigned char* p
    w.raw(path.data, path.size)
    if type(node) is ZNode:
        zn = <ZNode>node
        data = zn.data
        acl = zn.acl
    else:
        zn = None
        data = _attr(node, slots, F_DATA)
        acl = _attr(node, slots, F_ACL)
    if data is None:
        w.i32(-1)
    elif type(data) is bytes:
        w.raw(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    else:
        _get_buffer(data, &view)
        try:
            w.raw(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
    aid = ids.id_of(acl)
    if zn is None:
        _snap_stat_into(node, slots, aid, w.room(68))
    else:
        p = w.room(68)
        wr64(p, aid)
        wr64(p + 8, zn.czxid)
        wr64(p + 16, zn.mzxid)
        wr64(p + 24, zn.ctime)
        wr64(p + 32, zn.mtime)
        wr32(p + 40, zn.version)
        wr32(p + 44, zn.cversion)
        wr32(p + 48, zn.aversion)
        wr64(p + 52, zn.ephemeral_owner)
        wr64(p + 60, zn.pzxid)
    w.size += 68
    return 0


cdef list _snap_walk(Writer w, object nodes, object open_acl):
    """Write every node record of the tree ``nodes["/"]`` to ``w``, in snapshot pre-order;
    return the ACL lists (see ``encode_snapshot_nodes``)."""
    cdef Writer path = Writer.__new__(Writer)
    cdef _AclIds ids = _AclIds(open_acl)
    cdef list keep = []
    cdef _Frame* frames = NULL
    cdef _Frame* f
    cdef Py_ssize_t depth = 0, cap = 0
    cdef PyObject* name
    cdef PyObject* child
    cdef object node = nodes["/"], children
    cdef void* grown
    cdef _Slots slots
    _slots_of(type(node), &slots)
    try:
        _snap_node(w, path, node, &slots, ids)
        children = (<ZNode>node).kids if type(node) is ZNode else _attr(
            node, &slots, F_CHILDREN)
        while True:
            if children is not None:
                if type(children) is not dict:
                    if len(children):
                        raise TypeError(f"children of a node under {_path_text(path)!r} is "
                                        "not a dict")
                    children = {}
                if len(<dict>children):
                    if depth == cap:
                        cap = cap * 2 if cap else 64
                        grown = PyMem_Realloc(frames, cap * sizeof(_Frame))
                        if grown == NULL:
                            raise MemoryError()
                        frames = <_Frame*>grown
                    keep.append(children)
                    frames[depth].children = <PyObject*>children
                    frames[depth].pos = 0
                    frames[depth].base_len = path.size
                    depth += 1
                children = None
            if depth == 0:
                break
            f = &frames[depth - 1]
            if not PyDict_Next(<object>f.children, &f.pos, &name, &child):
                depth -= 1
                continue
            if type(<object>name) is not str:
                raise TypeError(f"child name {<object>name!r} of {_path_text(path)!r} is not "
                                f"a str")
            path.size = f.base_len
            path.put(<const unsigned char*>"/", 1)
            path.text_bytes(<str>name)
            node = <object>child
            _snap_node(w, path, node, &slots, ids)
            children = (<ZNode>node).kids if type(node) is ZNode else _attr(
                node, &slots, F_CHILDREN)
    finally:
        PyMem_Free(frames)
    return ids.acls


def encode_snapshot_nodes(nodes, open_acl, bytearray out not None):
    """Append a snapshot's node records, in its pre-order, to ``out``; return the ACL lists.

    The walk keeps one frame per open parent (its children dict and a ``PyDict_Next``
    position) and the current path as bytes, so no path string is built or looked up. The
    attributes of nodes of the root's class are read from their slots (``_slots_of``).
    """
    cdef Writer w = Writer.__new__(Writer)
    cdef list acls = _snap_walk(w, nodes, open_acl)
    w.append_to(out)
    return acls


ctypedef unsigned long (*_ZlibSum)(unsigned long, const unsigned char*, unsigned int) noexcept nogil


cdef inline uint32_t _zlib_sum(_ZlibSum fn, uint32_t value, const unsigned char* p,
                               Py_ssize_t n) noexcept nogil:
    # zlib takes an unsigned int length: feed it 1 GiB at a time.
    cdef Py_ssize_t chunk = 1 << 30
    while n > chunk:
        value = <uint32_t>fn(value, p, <unsigned int>chunk)
        p += chunk
        n -= chunk
    return <uint32_t>fn(value, p, <unsigned int>n)


cdef inline uint32_t _adler(uint32_t check, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    return _zlib_sum(adler32, check, p, n)


def encode_snapshot(nodes, open_acl, head, tail, Py_ssize_t size_hint=0):
    """A whole snapshot stream in one bytes object (see the twin).

    The records are written straight into the storage of the bytes object returned (grown in
    place, presized by ``size_hint``); ``head(acl_lists)`` is then moved in front of them and
    ``tail(check)`` appended, so the stream exists once in memory.
    """
    cdef Writer w = Writer.__new__(Writer)
    cdef list acls
    cdef object first, last
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef int owned
    cdef uint32_t check
    w.to_bytes(size_hint + (size_hint >> 4) + 4096 if size_hint > 0 else 0)
    acls = _snap_walk(w, nodes, open_acl)
    first = head(acls)
    owned = _read_view(first, &view)
    try:
        n = view.len
        w.room(n)
        memmove(w.data + n, w.data, w.size)
        memcpy(w.data, view.buf, n)
        w.size += n
    finally:
        if owned:
            PyBuffer_Release(&view)
    check = _adler(1, w.data, w.size)
    last = tail(check)
    owned = _read_view(last, &view)
    try:
        w.put(<const unsigned char*>view.buf, view.len)
    finally:
        if owned:
            PyBuffer_Release(&view)
    return w.take_bytes()


cdef str _path_text(Writer path):
    return PyUnicode_DecodeUTF8(<const char*>path.data, path.size, "replace") or "/"


cdef inline uint32_t _crc(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    return _zlib_sum(crc32, crc, p, n)


cdef inline void _digest_stat(ZNode zn, unsigned char* st) noexcept:
    """The 60 stat bytes the digest hashes, in ``DigestCalculator``'s order."""
    wr64(st, zn.czxid)
    wr64(st + 8, zn.mzxid)
    wr64(st + 16, zn.pzxid)
    wr64(st + 24, zn.ctime)
    wr64(st + 32, zn.mtime)
    wr32(st + 40, zn.version)
    wr32(st + 44, zn.cversion)
    wr32(st + 48, zn.aversion)
    wr64(st + 52, zn.ephemeral_owner)


cdef uint32_t _digest_crc(const unsigned char* path, Py_ssize_t n, const unsigned char* data,
                          Py_ssize_t data_n, const unsigned char* st) noexcept nogil:
    """CRC32 of path bytes, data bytes and the 60 stat bytes."""
    # Small nodes (the usual case) are hashed in one zlib call over a stack copy.
    cdef unsigned char small[512]
    cdef uint32_t crc
    if n + data_n + 60 <= 512:
        memcpy(small, path, n)
        if data_n:
            memcpy(small + n, data, data_n)
        memcpy(small + n + data_n, st, 60)
        return _crc(0, small, n + data_n + 60)
    crc = _crc(0, path, n)
    if data_n:
        crc = _crc(crc, data, data_n)
    return _crc(crc, st, 60)


def node_digest(str path not None, node):
    """CRC32 of one znode as the tree digest counts it (see the twin)."""
    cdef const char* utf8 = NULL
    cdef Py_ssize_t n = 0, data_n = 0
    cdef bytes raw
    cdef object data
    cdef Py_buffer view
    cdef bint release = False
    cdef const unsigned char* data_p = NULL
    cdef unsigned char st[60]
    if path.startswith("/zookeeper/"):
        return 0
    if path == "/":
        path = ""
    try:
        utf8 = PyUnicode_AsUTF8AndSize(path, &n)
    except UnicodeEncodeError:
        # Lone surrogates: Java's String.getBytes() writes '?' for each.
        raw = path.encode("utf-8", "replace")
        utf8 = PyBytes_AS_STRING(raw)
        n = PyBytes_GET_SIZE(raw)
    if type(node) is ZNode:
        _digest_stat(<ZNode>node, st)
        data = (<ZNode>node).data
    else:
        wr64(st, as_int("czxid", node.czxid, INT64_MIN, INT64_MAX, "a long"))
        wr64(st + 8, as_int("mzxid", node.mzxid, INT64_MIN, INT64_MAX, "a long"))
        wr64(st + 16, as_int("pzxid", node.pzxid, INT64_MIN, INT64_MAX, "a long"))
        wr64(st + 24, as_int("ctime", node.ctime, INT64_MIN, INT64_MAX, "a long"))
        wr64(st + 32, as_int("mtime", node.mtime, INT64_MIN, INT64_MAX, "a long"))
        wr32(st + 40, <int32_t>as_int("version", node.version, INT32_MIN, INT32_MAX,
                                      "an int"))
        wr32(st + 44, <int32_t>as_int("cversion", node.cversion, INT32_MIN, INT32_MAX,
                                      "an int"))
        wr32(st + 48, <int32_t>as_int("aversion", node.aversion, INT32_MIN, INT32_MAX,
                                      "an int"))
        wr64(st + 52, as_int("ephemeralOwner", node.ephemeral_owner, INT64_MIN, INT64_MAX,
                             "a long"))
        data = node.data
    if data:
        if type(data) is bytes:
            data_p = <const unsigned char*>PyBytes_AS_STRING(data)
            data_n = PyBytes_GET_SIZE(data)
        else:
            _get_buffer(data, &view)
            release = True
            data_p = <const unsigned char*>view.buf
            data_n = view.len
    try:
        return _digest_crc(<const unsigned char*>utf8, n, data_p, data_n, st)
    finally:
        if release:
            PyBuffer_Release(&view)


# --------------------------------------------------------------------------- snapshot load

cdef str _ROOT_KEY = "/"


cdef struct _Link:
    # One ancestor of the last node read: its path is the first ``n`` bytes of the loader's
    # ``chain_path`` (0: the root).
    Py_ssize_t n
    PyObject* node        # owned


cdef object _cut(Py_ssize_t i, str part, Py_ssize_t at, Py_ssize_t left, int n, str what):
    return ProtocolError(f"nodes[{i}].{part}", at, f"{n} bytes of {what}",
                         f"{left if left > 0 else 0} bytes left")


@cython.final
cdef class SnapshotLoader:
    """Decodes a snapshot's node records straight into ZNodes (see the twin).

    The parent of a record is found without building its path in the usual case: the loader
    keeps the chain of ancestors of the last node read (a snapshot is a pre-order walk, so a
    parent is on it), each as a length of the last ASCII path bytes and its node, and a path
    whose bytes up to its last ``/`` equal one of them links there. Every node on the chain
    is the one ``nodes`` holds for its path (a path read again replaces its chain entry as it
    replaces its map entry). Anything else (a non-ASCII path, a parent off the chain) takes
    the twin's way: ``nodes[path[:cut] or "/"]``. ``acls`` must not change between feeds.
    """

    cdef readonly dict acls
    cdef readonly dict nodes
    cdef readonly list owned
    cdef readonly list quota_limits
    cdef readonly Py_ssize_t count
    cdef readonly bint done
    cdef uint64_t digest_sum
    cdef int64_t size_sum
    cdef _Link* chain
    cdef Py_ssize_t depth
    cdef Py_ssize_t chain_cap
    cdef unsigned char* chain_path
    cdef Py_ssize_t chain_path_cap
    cdef object last_acl
    cdef int64_t last_aid

    def __init__(self, dict acls not None, dict nodes not None):
        self.acls = acls
        self.nodes = nodes
        self.owned = []
        self.quota_limits = []

    def __dealloc__(self):
        self._drop_chain(0)
        PyMem_Free(self.chain)
        PyMem_Free(self.chain_path)

    @property
    def digest(self):
        """Sum of the nodes' digests, mod 2**64."""
        return self.digest_sum

    @property
    def data_size(self):
        """Sum of ``len(path) + len(data)`` over the nodes read."""
        return self.size_sum

    cdef void _drop_chain(self, Py_ssize_t keep) noexcept:
        while self.depth > keep:
            self.depth -= 1
            Py_XDECREF(self.chain[self.depth].node)
            self.chain[self.depth].node = NULL

    cdef int _push(self, ZNode zn, const unsigned char* raw, Py_ssize_t n,
                   Py_ssize_t same) except -1:
        """Put ``zn`` (path ``raw[:n]``, of which the first ``same`` bytes are already in
        ``chain_path``) on top of the chain."""
        cdef void* grown
        cdef Py_ssize_t cap
        if self.depth == self.chain_cap:
            cap = self.chain_cap * 2 if self.chain_cap else 64
            grown = PyMem_Realloc(self.chain, cap * sizeof(_Link))
            if grown == NULL:
                raise MemoryError()
            self.chain = <_Link*>grown
            self.chain_cap = cap
        if n > self.chain_path_cap:
            cap = n if n > 2 * self.chain_path_cap else 2 * self.chain_path_cap
            grown = PyMem_Realloc(self.chain_path, cap if cap > 256 else 256)
            if grown == NULL:
                raise MemoryError()
            self.chain_path = <unsigned char*>grown
            self.chain_path_cap = cap if cap > 256 else 256
        if n > same:
            memcpy(self.chain_path + same, raw + same, n - same)
        Py_INCREF(zn)
        self.chain[self.depth].n = n
        self.chain[self.depth].node = <PyObject*>zn
        self.depth += 1
        return 0

    cdef Py_ssize_t _on_chain(self, const unsigned char* raw, Py_ssize_t cut) noexcept:
        """Index of the chain entry whose path is ``raw[:cut]``, or -1."""
        cdef Py_ssize_t k = self.depth - 1
        while k >= 0 and self.chain[k].n > cut:
            k -= 1
        if k >= 0 and self.chain[k].n == cut and memcmp(self.chain_path, raw, cut) == 0:
            return k
        return -1

    def feed(self, buf, Py_ssize_t offset=0, Py_ssize_t base=0, bint final=True):
        """Read node records from ``buf[offset:]``; return the offset after the last one
        taken (see the twin)."""
        cdef Py_buffer view
        cdef int owned = _read_view(buf, &view)
        try:
            if offset < 0 or offset > view.len:
                raise ValueError(f"offset {offset} is outside the buffer (0..{view.len})")
            return self._feed(<const unsigned char*>view.buf, view.len, offset, base, final)
        finally:
            if owned:
                PyBuffer_Release(&view)

    cdef Py_ssize_t _feed(self, const unsigned char* p, Py_ssize_t end, Py_ssize_t pos,
                          Py_ssize_t base, bint final) except -1:
        cdef Py_ssize_t i, start, data_at, cut, k, length
        cdef int32_t n, dn
        cdef const unsigned char* raw
        cdef const unsigned char* q
        cdef const unsigned char* hp
        cdef Py_ssize_t hn
        cdef int64_t aid
        cdef object acl, path, key, name, parent, enc
        cdef PyObject* found
        cdef ZNode zn, pz
        cdef bint ascii
        cdef uint32_t h
        cdef unsigned char st[60]
        while not self.done:
            i = self.count
            start = pos
            # ustring path
            if end - pos < 4:
                if not final:
                    return start
                raise _cut(i, "path", base + pos, end - pos, 4, "length")
            n = rd32(p + pos)
            if n == -1:
                raise ProtocolError(f"nodes[{i}].path", base + pos, "a path", "null")
            if n < -1 or n > end - pos - 4:
                if not final:
                    return start  # the message names the bytes left in the stream
                raise ProtocolError(f"nodes[{i}].path.length", base + pos,
                                    f"-1..{end - pos - 4}", str(n))
            raw = p + pos + 4
            pos += 4 + n
            if n == 1 and raw[0] == 47:  # "/": the end of the node list
                self.done = True
                return pos
            # buffer data
            if end - pos < 4:
                if not final:
                    return start
                raise _cut(i, "data", base + pos, end - pos, 4, "length")
            dn = rd32(p + pos)
            if dn < -1 or dn > end - pos - 4:
                if not final:
                    return start  # the message names the bytes left in the stream
                raise ProtocolError(f"nodes[{i}].data.length", base + pos,
                                    f"-1..{end - pos - 4}", str(dn))
            data_at = pos + 4
            pos = data_at + (dn if dn > 0 else 0)
            # long aclId, StatPersisted
            if end - pos < 68:
                if not final:
                    return start
                if end - pos < 8:
                    raise _cut(i, "aclId", base + pos, end - pos, 8, "long")
                raise _cut(i, "stat", base + pos + 8, end - pos - 8, 60, "StatPersisted")
            aid = rd64(p + pos)
            if self.last_acl is not None and aid == self.last_aid:
                acl = self.last_acl
            else:
                found = PyDict_GetItem(self.acls, aid)
                if found == NULL:
                    raise ProtocolError(f"nodes[{i}].aclId", base + pos,
                                        "an id of the ACL cache", str(aid))
                acl = <object>found
                self.last_acl = acl
                self.last_aid = aid
            zn = ZNode.__new__(ZNode)
            if dn >= 0:
                zn.data = PyBytes_FromStringAndSize(<const char*>(p + data_at), dn)
            zn.acl = acl
            q = p + pos + 8
            zn.czxid = rd64(q)
            zn.mzxid = rd64(q + 8)
            zn.ctime = rd64(q + 16)
            zn.mtime = rd64(q + 24)
            zn.version = rd32(q + 32)
            zn.cversion = rd32(q + 36)
            zn.aversion = rd32(q + 40)
            zn.ephemeral_owner = rd64(q + 44)
            zn.pzxid = rd64(q + 52)
            pos += 68
            if n == 0:
                key = _ROOT_KEY
                self._drop_chain(0)
                self._push(zn, raw, 0, 0)
                hp = raw
                hn = 0
            else:
                path = PyUnicode_DecodeUTF8(<const char*>raw, n, "replace")
                length = PyUnicode_GET_LENGTH(path)
                ascii = PyUnicode_IS_ASCII(path)
                k = -1
                if ascii:
                    cut = n - 1
                    while cut >= 0 and raw[cut] != 47:
                        cut -= 1
                    if cut >= 0:
                        k = self._on_chain(raw, cut)
                else:
                    cut = PyUnicode_FindChar(path, 47, 0, length, -1)
                if k >= 0:
                    parent = <object>self.chain[k].node
                else:
                    # DataTree.from_nodes: nodes.get(path[:path.rfind("/")] or "/")
                    key = PyUnicode_Substring(path, 0, cut if cut >= 0 else length - 1)
                    found = PyDict_GetItem(self.nodes, key if len(key) else _ROOT_KEY)
                    if found == NULL:
                        raise ValueError(f"invalid snapshot: no parent for {path!r}")
                    parent = <object>found
                name = PyUnicode_Substring(path, cut + 1, length)
                if type(parent) is ZNode:
                    pz = <ZNode>parent
                    if pz.kids is None:
                        pz.kids = {name: zn}
                    else:
                        PyDict_SetDefault(pz.kids, name, zn)
                else:
                    parent.link(name, zn)
                if k >= 0:
                    self._drop_chain(k + 1)
                    self._push(zn, raw, n, cut)
                else:
                    self._drop_chain(0)
                    if ascii:
                        self._push(zn, raw, n, 0)
                if zn.ephemeral_owner != 0:
                    self.owned.append((path, zn.ephemeral_owner))
                if n >= 17 and memcmp(raw, b"/zookeeper/quota/", 17) == 0 and \
                        memcmp(raw + n - 17, b"/zookeeper_limits", 17) == 0:
                    self.quota_limits.append(path)
                key = path
                if ascii:
                    hp = raw
                    hn = n
                else:
                    enc = PyUnicode_AsUTF8String(path)
                    hp = <const unsigned char*>PyBytes_AS_STRING(enc)
                    hn = PyBytes_GET_SIZE(enc)
            PyDict_SetItem(self.nodes, key, zn)
            if n >= 11 and memcmp(raw, b"/zookeeper/", 11) == 0:
                h = 0
            else:
                _digest_stat(zn, st)
                h = _digest_crc(hp, hn, p + data_at, dn if dn > 0 else 0, st)
            zn.digest_value = h
            zn.has_digest = True
            self.digest_sum += h
            self.size_sum += PyUnicode_GET_LENGTH(key) + (dn if dn > 0 else 0)
            self.count = i + 1
        return pos
