/* Adding a delta's differences to its base's lanes (mvc.objects.delta), compiled: an optional accelerator.

The frames are untrusted bytes: every read of them and every write of a window is checked against its
buffer's length here, whatever the caller passes. The arithmetic is the format's (docs/FORMAT.md, "Deltas"):
lanes are little-endian integers of w bytes, a difference is zigzag-coded (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...)
and added modulo 2^(8w); byte planes hold byte i of every entry together.

Without a C compiler mvc installs without this module, and delta.py does the same with numpy. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define GAP 4 /* bytes of a zs entry's gap (delta.GAP) */

static int lane_width(int w) { return w == 1 || w == 2 || w == 4 || w == 8; }

/* lane p += the zigzag-coded z, modulo 2^(8w) */
static inline void add_lane(uint8_t *p, uint64_t z, int w) {
    uint64_t d = (z >> 1) ^ (0 - (z & 1));
    switch (w) {
    case 1: p[0] = (uint8_t)(p[0] + d); break;
    case 2: { uint16_t v; memcpy(&v, p, 2); v = (uint16_t)(v + d); memcpy(p, &v, 2); break; }
    case 4: { uint32_t v; memcpy(&v, p, 4); v = (uint32_t)(v + d); memcpy(p, &v, 4); break; }
    default: { uint64_t v; memcpy(&v, p, 8); v += d; memcpy(p, &v, 8); }
    }
}

/* byte i of entry j of planes each m bytes long, from plane `first` on, as a little-endian integer of n bytes */
static inline uint64_t gather(const uint8_t *r, Py_ssize_t m, int first, int n, Py_ssize_t j) {
    uint64_t z = 0;
    for (int i = 0; i < n; i++) z |= (uint64_t)r[(first + i) * m + j] << (8 * i);
    return z;
}

PyDoc_STRVAR(sparse_doc,
"sparse(window, raw, m, w, first, j, place, k) -> (j, place)\n\n"
"Add the changes of a zs frame's planes raw (m entries) that fall in window, lanes first.. of w bytes, from entry\n"
"j on (the change before it is at lane `place`; -1 before the first) until one falls past the window; changes\n"
"before the window (in windows skipped) are passed over. Returns where to go on from. ValueError when a change\n"
"falls at or past lane k, or the arguments disagree.");

static PyObject *sparse(PyObject *self, PyObject *args) {
    Py_buffer win, raw;
    Py_ssize_t m, first, j, place, k;
    int w;
    if (!PyArg_ParseTuple(args, "w*y*ninnnn", &win, &raw, &m, &w, &first, &j, &place, &k)) return NULL;
    const char *wrong = NULL;
    if (!lane_width(w)) wrong = "a lane is 1, 2, 4 or 8 bytes";
    else if (m < 0 || m > raw.len / (GAP + w)) wrong = "the planes are shorter than their entries";
    else if (j < 0 || j > m || place < -1 || first < 0 || k < 0 || place >= k) wrong = "no such place to go on from";
    /* (a place is at most 2^32 past the last one, and below k: no sum here can overflow) */
    else if (k > PY_SSIZE_T_MAX - ((Py_ssize_t)1 << 33) || first > k || win.len / w > PY_SSIZE_T_MAX - first)
        wrong = "more lanes than a delta can have";
    if (wrong) {
        PyBuffer_Release(&win);
        PyBuffer_Release(&raw);
        PyErr_SetString(PyExc_ValueError, wrong);
        return NULL;
    }
    const uint8_t *r = raw.buf;
    uint8_t *out = win.buf;
    Py_ssize_t end = first + win.len / w; /* lanes first..end lie in the window */
    int past = 0;
    Py_BEGIN_ALLOW_THREADS
    while (j < m) {
        Py_ssize_t next = place + 1 + (Py_ssize_t)gather(r, m, 0, GAP, j); /* at most 2^32 past place */
        if (next >= k) {
            past = 1;
            place = next;
            break;
        }
        if (next >= end) break;
        if (next >= first) add_lane(out + (next - first) * w, gather(r, m, GAP, w, j), w); /* else: a window skipped */
        place = next;
        j++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&win);
    PyBuffer_Release(&raw);
    if (past) {
        PyErr_Format(PyExc_ValueError, "the sparse delta changes lane %zd, past the %zd lanes of its base", place, k);
        return NULL;
    }
    return Py_BuildValue("nn", j, place);
}

PyDoc_STRVAR(dense_doc,
"dense(window, planes, count, w, first)\n\n"
"Add a zd frame's differences (planes of count lanes of w bytes) for lanes first.. to the lanes of window.\n"
"ValueError when the window reaches past lane count, or the arguments disagree.");

/* out's lanes += the un-zigzagged lanes whose byte i lies in plane i (p0, p1, ...: each from this window's first
   lane on) */
static void dense1(uint8_t *restrict out, const uint8_t *restrict p0, Py_ssize_t lanes) {
    for (Py_ssize_t i = 0; i < lanes; i++) {
        uint8_t z = p0[i];
        out[i] = (uint8_t)(out[i] + ((z >> 1) ^ (uint8_t)(0 - (z & 1))));
    }
}

static void dense2(uint8_t *restrict out, const uint8_t *restrict p0, const uint8_t *restrict p1, Py_ssize_t lanes) {
    for (Py_ssize_t i = 0; i < lanes; i++) {
        uint16_t z = (uint16_t)(p0[i] | p1[i] << 8), v;
        memcpy(&v, out + 2 * i, 2);
        v = (uint16_t)(v + ((z >> 1) ^ (uint16_t)(0 - (z & 1))));
        memcpy(out + 2 * i, &v, 2);
    }
}

static void dense4(uint8_t *restrict out, const uint8_t *restrict p0, const uint8_t *restrict p1,
                   const uint8_t *restrict p2, const uint8_t *restrict p3, Py_ssize_t lanes) {
    for (Py_ssize_t i = 0; i < lanes; i++) {
        uint32_t z = (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 | (uint32_t)p3[i] << 24, v;
        memcpy(&v, out + 4 * i, 4);
        v += (z >> 1) ^ (0 - (z & 1));
        memcpy(out + 4 * i, &v, 4);
    }
}

static void dense8(uint8_t *restrict out, const uint8_t *restrict r, Py_ssize_t count, Py_ssize_t lanes) {
    for (Py_ssize_t i = 0; i < lanes; i++) {
        uint64_t z = 0, v;
        for (int b = 0; b < 8; b++) z |= (uint64_t)r[b * count + i] << (8 * b);
        memcpy(&v, out + 8 * i, 8);
        v += (z >> 1) ^ (0 - (z & 1));
        memcpy(out + 8 * i, &v, 8);
    }
}

static PyObject *dense(PyObject *self, PyObject *args) {
    Py_buffer win, planes;
    Py_ssize_t count, first;
    int w;
    if (!PyArg_ParseTuple(args, "w*y*nin", &win, &planes, &count, &w, &first)) return NULL;
    Py_ssize_t lanes = lane_width(w) ? win.len / w : 0;
    const char *wrong = NULL;
    if (!lane_width(w)) wrong = "a lane is 1, 2, 4 or 8 bytes";
    else if (count < 0 || count > planes.len / w) wrong = "the planes are shorter than their lanes";
    else if (first < 0 || first > count || lanes > count - first) wrong = "the window reaches past the last lane";
    if (wrong) {
        PyBuffer_Release(&win);
        PyBuffer_Release(&planes);
        PyErr_SetString(PyExc_ValueError, wrong);
        return NULL;
    }
    const uint8_t *r = planes.buf + first;
    uint8_t *out = win.buf;
    Py_BEGIN_ALLOW_THREADS
    switch (w) { /* a loop for each width, simple enough for the compiler to vectorize */
    case 1: dense1(out, r, lanes); break;
    case 2: dense2(out, r, r + count, lanes); break;
    case 4: dense4(out, r, r + count, r + 2 * count, r + 3 * count, lanes); break;
    default: dense8(out, r, count, lanes);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&win);
    PyBuffer_Release(&planes);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sparse", sparse, METH_VARARGS, sparse_doc},
    {"dense", dense, METH_VARARGS, dense_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mvc.objects._patch", "A delta's differences added to its base, compiled.", -1, methods,
};

PyMODINIT_FUNC PyInit__patch(void) { return PyModule_Create(&module); }
