//! The log parser (world log-parser) in Rust: one line in, one structured entry (or a reason) out, by the
//! rules of shared/logline.py, as parser.c has them.
//!
//! Freestanding (`no_std`, no allocator, no WASI), built by Debian's rustc for wasm32-unknown-unknown: with no
//! crates registry here, the canonical ABI is written by hand, as the C guests write it. The host allocates
//! the argument through `cabi_realloc` in a bump arena; `parse` returns a pointer to the result as the
//! canonical ABI stores `result<log-entry, string>`; the post-return function empties the arena once the host
//! has copied the result out.
#![no_std]

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// ------------------------------------------------------------------------------------------------ arena --

extern "C" {
    static __heap_base: u8;
}

static mut TOP: usize = 0;

unsafe fn arena_alloc(size: usize, align: usize) -> *mut u8 {
    if TOP == 0 {
        TOP = &__heap_base as *const u8 as usize;
    }
    let start = (TOP + align - 1) & !(align - 1);
    let end = start + size;
    let have = core::arch::wasm32::memory_size(0) * 65536;
    if end > have && core::arch::wasm32::memory_grow(0, (end - have + 65535) / 65536) == usize::MAX {
        core::arch::wasm32::unreachable();
    }
    TOP = end;
    start as *mut u8
}

#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
    if !old.is_null() && new_size <= old_size {
        return old;
    }
    let fresh = arena_alloc(new_size, align);
    if !old.is_null() {
        core::ptr::copy_nonoverlapping(old, fresh, old_size);
    }
    fresh
}

/// Text being built in the arena (only ever the newest allocation, so it grows in place).
struct Buf {
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { ptr: core::ptr::null_mut(), len: 0, cap: 0 }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.cap {
            let mut cap = if self.cap == 0 { 64 } else { self.cap * 2 };
            while cap < self.len + bytes.len() {
                cap *= 2;
            }
            self.ptr = unsafe { cabi_realloc(self.ptr, self.cap, 1, cap) };
            self.cap = cap;
        }
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.len), bytes.len()) };
        self.len += bytes.len();
    }

    /// `s` quoted as Python's repr() quotes a str (ASCII escapes; other UTF-8 passed through).
    fn put_repr(&mut self, s: &[u8]) {
        let quote = if s.contains(&b'\'') && !s.contains(&b'"') { b'"' } else { b'\'' };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.put(&[quote]);
        for &c in s {
            match c {
                b'\\' => self.put(b"\\\\"),
                b'\n' => self.put(b"\\n"),
                b'\r' => self.put(b"\\r"),
                b'\t' => self.put(b"\\t"),
                _ if c == quote => self.put(&[b'\\', c]),
                _ if c < 0x20 || c == 0x7f => self.put(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]),
                _ => self.put(&[c]),
            }
        }
        self.put(&[quote]);
    }
}

// --------------------------------------------------------------------------------------- canonical ABI --

/// A string as lowered: pointer and length.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Str {
    ptr: *const u8,
    len: usize,
}

impl Str {
    fn of(s: &[u8]) -> Str {
        Str { ptr: s.as_ptr(), len: s.len() }
    }
}

/// `record log-entry` as the canonical ABI stores it (28 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LogEntry {
    timestamp: Str,
    level: u8, // enum level { debug, info, warn, error }
    source: Str,
    message: Str,
}

/// `result<log-entry, string>`: a case byte, the payload at offset 4 (32 bytes).
#[repr(C)]
pub union Payload {
    ok: LogEntry,
    err: Str,
}

#[repr(C)]
pub struct ParseResult {
    is_err: u8,
    val: Payload,
}

const _: () = assert!(core::mem::size_of::<LogEntry>() == 28);
const _: () = assert!(core::mem::size_of::<ParseResult>() == 32);

static mut RESULT: ParseResult = ParseResult { is_err: 0, val: Payload { err: Str { ptr: 0 as *const u8, len: 0 } } };

// ------------------------------------------------------------------------------------------- the rules --

const LEVELS: [&[u8]; 4] = [b"DEBUG", b"INFO", b"WARN", b"ERROR"];

fn is_space(c: u8) -> bool {
    c == b' ' || (b'\t'..=b'\r').contains(&c)
}

/// 2026-11-24T08:00:00Z, or with an offset or a fraction: checked by shape.
fn looks_like_timestamp(t: &[u8]) -> bool {
    t.len() >= 20
        && t[4] == b'-'
        && t[7] == b'-'
        && t[10] == b'T'
        && t[13] == b':'
        && t[16] == b':'
        && t[..4].iter().all(u8::is_ascii_digit)
}

fn fail(what: &[u8], quoted: &[u8]) -> Result<LogEntry, Str> {
    let mut why = Buf::new();
    why.put(what);
    why.put_repr(quoted);
    Err(Str { ptr: why.ptr, len: why.len })
}

fn parse_line(raw: &[u8]) -> Result<LogEntry, Str> {
    let mut line = raw;
    while let [c, rest @ ..] = line {
        if !is_space(*c) {
            break;
        }
        line = rest;
    }
    while let [rest @ .., c] = line {
        if !is_space(*c) {
            break;
        }
        line = rest;
    }
    let first = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let second = if first < line.len() {
        line[first + 1..].iter().position(|&c| c == b' ').map_or(line.len(), |i| first + 1 + i)
    } else {
        line.len()
    };
    if second >= line.len() {
        return fail(b"expected '<timestamp> <LEVEL> <source>: <message>', got ", raw);
    }
    let (timestamp, level_name, rest) = (&line[..first], &line[first + 1..second], &line[second + 1..]);
    if !looks_like_timestamp(timestamp) {
        return fail(b"bad timestamp ", timestamp);
    }
    let mut upper = [0u8; 8];
    let mut level = None;
    if level_name.len() < upper.len() {
        for (i, c) in level_name.iter().enumerate() {
            upper[i] = c.to_ascii_uppercase();
        }
        let mut name = &upper[..level_name.len()];
        if name == b"WARNING" {
            name = b"WARN"; // the alias WARNING -> WARN
        }
        level = LEVELS.iter().position(|l| *l == name);
    }
    let level = match level {
        Some(level) => level as u8,
        None => return fail(b"unknown level ", level_name),
    };
    let colon = (0..rest.len().saturating_sub(1)).find(|&i| rest[i] == b':' && rest[i + 1] == b' ');
    let colon = match colon {
        Some(colon) if colon > 0 && !rest[..colon].contains(&b' ') => colon,
        _ => return fail(b"missing '<source>: ' in ", rest),
    };
    Ok(LogEntry {
        timestamp: Str::of(timestamp),
        level,
        source: Str::of(&rest[..colon]),
        message: Str::of(&rest[colon + 2..]),
    })
}

/// The entry's strings point into the argument: the caller copies them out before post-return.
#[export_name = "cyber-systems:logs/parser@0.1.0#parse"]
pub unsafe extern "C" fn parse(ptr: *const u8, len: usize) -> *const ParseResult {
    let raw = core::slice::from_raw_parts(ptr, len);
    RESULT = match parse_line(raw) {
        Ok(entry) => ParseResult { is_err: 0, val: Payload { ok: entry } },
        Err(why) => ParseResult { is_err: 1, val: Payload { err: why } },
    };
    &RESULT
}

#[export_name = "cabi_post_cyber-systems:logs/parser@0.1.0#parse"]
pub unsafe extern "C" fn parse_post_return(_ret: *const ParseResult) {
    TOP = 0; // the host has copied the result: the arena starts over
}
