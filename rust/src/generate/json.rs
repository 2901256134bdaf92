//! Just enough of a JSON writer to emit events without building a value tree first.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `s` as a JSON string, UTF-8 kept as is.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            out.extend_from_slice(&bytes[start..i]);
            escape_byte(out, b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes `s` as a JSON string with every non-ASCII character as `\uXXXX` (surrogate pairs
/// above the BMP), as ASCII-only encoders such as Python's `json.dumps` do.
pub fn write_str_ascii(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '\0'..='\x1f' => escape_byte(out, c as u8),
            c if c.is_ascii() => out.push(c as u8),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write_u_escape(out, *unit);
                }
            }
        }
    }
    out.push(b'"');
}

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => write_u_escape(out, b as u16),
    }
}

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xF) as usize]);
    }
}

/// An open JSON object; members are appended in call order and `close` writes the brace.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(b':');
    }

    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    /// A string member whose value is written with `\u` escapes for non-ASCII.
    pub fn str_ascii(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str_ascii(self.out, value);
    }

    pub fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn f64(&mut self, key: &str, value: f64) {
        self.key(key);
        self.out
            .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }

    /// A member whose value is already JSON text.
    pub fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    pub fn obj(&mut self, key: &str) -> Obj<'_> {
        self.key(key);
        Obj::open(self.out)
    }

    pub fn arr(&mut self, key: &str) -> Arr<'_> {
        self.key(key);
        Arr::open(self.out)
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

/// An open JSON array, the counterpart of `Obj`.
pub struct Arr<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Arr<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'[');
        Arr { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    pub fn str(&mut self, value: &str) {
        self.sep();
        write_str(self.out, value);
    }

    pub fn close(self) {
        self.out.push(b']');
    }
}
