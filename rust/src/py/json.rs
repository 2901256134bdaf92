//! Compact JSON from Python values, byte for byte what msgspec's default encoder writes, for the
//! types events are made of: `str` keys; str, int within i64, float, bool, None, dict, list and
//! tuple values. Anything else is `Unsupported`, and the caller hands the event to msgspec.
//!
//! Every pointer here is a live object borrowed from the event, which holds it for as long as
//! the encoder runs: the encoder calls no Python code, so nothing can change the containers
//! under it. A failure (a lone surrogate) stops the walk at once.
//!
//! Limitation: that reasoning needs the GIL. Without it (a free-threaded build, which this abi3
//! module cannot be loaded in today) another thread could change a container while it is read,
//! and each one would have to be read inside a critical section.

use std::ptr::addr_of_mut;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The event holds a value the encoder does not cover; what was written is to be dropped.
pub struct Unsupported;

/// Containers nested deeper are left to msgspec, which also ends a reference cycle.
const MAX_DEPTH: usize = 64;

/// Appends `dict` to `out` as one JSON object.
pub fn write_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>) -> Result<(), Unsupported> {
    // SAFETY: `dict` is a live dict, held by the caller for the whole call.
    unsafe { write_object(out, dict.as_ptr(), 0) }
}

/// # Safety
/// `obj` is a live object that no other code changes during the call (module docs).
unsafe fn write_value(
    out: &mut Vec<u8>,
    obj: *mut ffi::PyObject,
    depth: usize,
) -> Result<(), Unsupported> {
    let kind = ffi::Py_TYPE(obj);
    if kind == addr_of_mut!(ffi::PyUnicode_Type) {
        write_str(out, obj)
    } else if kind == addr_of_mut!(ffi::PyLong_Type) {
        write_int(out, obj)
    } else if kind == addr_of_mut!(ffi::PyFloat_Type) {
        write_float(out, ffi::PyFloat_AsDouble(obj));
        Ok(())
    } else if obj == ffi::Py_None() {
        out.extend_from_slice(b"null");
        Ok(())
    } else if kind == addr_of_mut!(ffi::PyBool_Type) {
        let word: &[u8] = if obj == ffi::Py_True() {
            b"true"
        } else {
            b"false"
        };
        out.extend_from_slice(word);
        Ok(())
    } else if kind == addr_of_mut!(ffi::PyDict_Type) {
        write_object(out, obj, depth + 1)
    } else if kind == addr_of_mut!(ffi::PyList_Type) {
        write_array(out, obj, depth + 1, ffi::PyList_Size, ffi::PyList_GetItem)
    } else if kind == addr_of_mut!(ffi::PyTuple_Type) {
        write_array(out, obj, depth + 1, ffi::PyTuple_Size, ffi::PyTuple_GetItem)
    } else {
        Err(Unsupported)
    }
}

/// # Safety
/// `dict` is a live dict that no other code changes during the call.
unsafe fn write_object(
    out: &mut Vec<u8>,
    dict: *mut ffi::PyObject,
    depth: usize,
) -> Result<(), Unsupported> {
    if depth > MAX_DEPTH {
        return Err(Unsupported);
    }
    out.push(b'{');
    let (mut pos, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
    while ffi::PyDict_Next(dict, &mut pos, &mut key, &mut value) != 0 {
        if ffi::Py_TYPE(key) != addr_of_mut!(ffi::PyUnicode_Type) {
            return Err(Unsupported);
        }
        write_str(out, key)?;
        out.push(b':');
        write_value(out, value, depth)?;
        out.push(b',');
    }
    close(out, b'{', b'}');
    Ok(())
}

/// A list or a tuple, read through the size and item functions of its type.
///
/// # Safety
/// `seq` is a live object of the type the functions are for, unchanged during the call.
unsafe fn write_array(
    out: &mut Vec<u8>,
    seq: *mut ffi::PyObject,
    depth: usize,
    size: unsafe extern "C" fn(*mut ffi::PyObject) -> ffi::Py_ssize_t,
    item: unsafe extern "C" fn(*mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject,
) -> Result<(), Unsupported> {
    if depth > MAX_DEPTH {
        return Err(Unsupported);
    }
    out.push(b'[');
    for i in 0..size(seq) {
        write_value(out, item(seq, i), depth)?;
        out.push(b',');
    }
    close(out, b'[', b']');
    Ok(())
}

/// Replaces the comma after the last member with `end`, or appends `end` after `open`.
fn close(out: &mut Vec<u8>, open: u8, end: u8) {
    match out.last_mut() {
        Some(last) if *last == b',' => *last = end,
        _ => {
            debug_assert_eq!(out.last(), Some(&open));
            out.push(end);
        }
    }
}

/// Limitation: CPython keeps the UTF-8 form of a non-ASCII `str` once asked for it, so such a
/// string holds that copy for as long as it lives (msgspec reads the characters in place).
///
/// # Safety
/// `obj` is a live `str`.
unsafe fn write_str(out: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Result<(), Unsupported> {
    let mut len: ffi::Py_ssize_t = 0;
    let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut len);
    if data.is_null() {
        // A lone surrogate has no UTF-8 form: msgspec raises the error the caller expects.
        ffi::PyErr_Clear();
        return Err(Unsupported);
    }
    // SAFETY: the str keeps its UTF-8 form, `len` bytes long, for as long as it lives.
    let text = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
    write_escaped(out, text);
    Ok(())
}

/// # Safety
/// `obj` is a live `int` (not a subclass, so converting it runs no Python code).
unsafe fn write_int(out: &mut Vec<u8>, obj: *mut ffi::PyObject) -> Result<(), Unsupported> {
    let mut overflow = 0;
    let value = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
    if overflow != 0 {
        return Err(Unsupported);
    }
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    Ok(())
}

/// The shortest text that reads back as `value`, as msgspec writes it; msgspec writes NaN and
/// the infinities as `null`.
fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// For each byte: 0 when it is copied as it is, `u` when it is written `\u00XX`, otherwise the
/// letter that follows the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[b'\t' as usize] = b't';
    table[b'\n' as usize] = b'n';
    table[0x0c] = b'f';
    table[b'\r' as usize] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `text` as a JSON string: quotes, backslashes and control characters escaped, everything
/// else (DEL, U+2028, non-ASCII) copied as UTF-8, as msgspec does.
fn write_escaped(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    // Most text needs no escape: runs are found eight bytes at a time (the decoder's search
    // for the bytes a JSON string cannot hold as they are; its sixteen-byte steps measured
    // slower on these short strings) and copied whole.
    while let Some(i) = crate::decode::scan::special_portable(text, start) {
        out.extend_from_slice(&text[start..i]);
        let b = text[i];
        match ESCAPE[b as usize] {
            b'u' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            escape => out.extend_from_slice(&[b'\\', escape]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}
