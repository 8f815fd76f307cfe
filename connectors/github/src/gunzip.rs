//! Response bodies are inflated here, in one call over the whole compressed body, rather
//! than by reqwest's streaming decoder.
//!
//! api.github.com gzips its JSON for clients that accept it, and inflating is the largest
//! single CPU cost of a sync; libdeflate inflates a whole buffer at once, over twice as fast
//! as a streaming decoder (BENCHMARKS.md). It needs the output size up front: a gzip member ends with its size (ISIZE), which is checked, never trusted:
//! anything unexpected (a multi-member body, a lying trailer, corrupt data) goes through
//! flate2's streaming decoder instead, which handles every valid gzip body and names what
//! is wrong with an invalid one.

use reqwest::header::{HeaderMap, CONTENT_ENCODING};
use std::io::Read;

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

/// The body's encoding from `Content-Encoding`. flowctl asks for gzip only, so anything
/// else is an error naming what came.
pub(crate) fn encoding(h: &HeaderMap) -> Result<Encoding, String> {
    let Some(v) = h.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = v
        .to_str()
        .map_err(|_| "a Content-Encoding header that is not text".to_string())?
        .trim();
    if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else if v.is_empty() || v.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else {
        Err(format!(
            "Content-Encoding `{}` (flowctl asks for gzip or plain JSON only)",
            v.chars().take(40).collect::<String>()
        ))
    }
}

/// Why a body did not inflate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GunzipError {
    /// Not valid gzip (corrupt, truncated, not gzip at all): worth another request.
    Corrupt(String),
    /// More than the bound: asking again would only download it again.
    TooLarge(String),
}

impl std::fmt::Display for GunzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GunzipError::Corrupt(m) | GunzipError::TooLarge(m) => f.write_str(m),
        }
    }
}

/// Inflates the gzip body `gz` into `out` (cleared first), at most `max` bytes.
pub fn gunzip(gz: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), GunzipError> {
    out.clear();
    if let Some(size) = single_member_size(gz, max) {
        if Inflater::new().is_some_and(|mut d| d.whole_single_member(gz, out, size)) {
            return Ok(());
        }
        out.clear();
    }
    streaming(gz, out, max)
}

/// A libdeflate decompressor (its state, ~10 KB), freed on drop.
struct Inflater(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: no arguments; a null result (out of memory) is handled.
        let p = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        std::ptr::NonNull::new(p).map(Inflater)
    }

    /// Inflates `gz` into `out`'s spare capacity when `gz` is exactly one gzip member
    /// that inflates to `size` bytes (CRC and size checked by libdeflate); false for
    /// anything else, with `out` untouched.
    fn whole_single_member(&mut self, gz: &[u8], out: &mut Vec<u8>, size: usize) -> bool {
        out.reserve(size);
        let (mut used, mut made) = (0usize, 0usize);
        // SAFETY: the decompressor is live (owned by self); `gz` is readable for its
        // length; libdeflate writes at most `size` bytes at `out`'s end, within the
        // capacity reserved above, and reports how many it wrote and read.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                gz.as_ptr().cast(),
                gz.len(),
                out.as_mut_ptr().add(out.len()).cast(),
                size,
                &mut used,
                &mut made,
            )
        };
        // Success decodes only the first member: it must be the whole body.
        let ok = libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS;
        if r != ok || used != gz.len() || made != size {
            return false;
        }
        // SAFETY: libdeflate initialized `made` (== size <= spare capacity) bytes.
        unsafe { out.set_len(out.len() + made) };
        true
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Deflate's best ratio is 1032:1, so a body claiming more than that is lying.
const MAX_RATIO: usize = 1032;
/// Largest buffer sized from a trailer: a body's last 4 bytes decide how much is reserved
/// before a byte is checked, so a corrupt one must not cost more than this.
const MAX_FAST_BYTES: usize = 64 << 20;

/// The gzip header flag FHCRC: a CRC-16 of the header follows it. libdeflate skips that
/// CRC without checking it (flate2 checks it; fuzz target `gunzip` found the difference),
/// so such a body takes the streaming path. GitHub does not set it.
const FHCRC: u8 = 0x02;

/// The ISIZE of the body's last gzip trailer, when it is plausible: within the bound,
/// deflate's ratio and `MAX_FAST_BYTES`; None for a header with FHCRC.
fn single_member_size(gz: &[u8], max: usize) -> Option<usize> {
    // 10-byte header + at least a 2-byte deflate block + 8-byte trailer.
    if gz.len() < 20 || gz[3] & FHCRC != 0 {
        return None;
    }
    let at = gz.len() - 4;
    let size = u32::from_le_bytes([gz[at], gz[at + 1], gz[at + 2], gz[at + 3]]) as usize;
    let plausible = gz.len().saturating_mul(MAX_RATIO).min(MAX_FAST_BYTES);
    (size <= max && size <= plausible).then_some(size)
}

/// Any valid gzip body, member after member, with the same bound.
fn streaming(gz: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), GunzipError> {
    let mut dec = flate2::read::MultiGzDecoder::new(gz).take(max as u64 + 1);
    if let Err(e) = dec.read_to_end(out) {
        out.clear();
        return Err(GunzipError::Corrupt(format!(
            "the gzip body does not inflate: {e}"
        )));
    }
    if out.len() > max {
        out.clear();
        return Err(GunzipError::TooLarge(format!(
            "the gzip body inflates to more than {max} bytes (the most flowctl reads in one response)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::from("[");
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"id":{i},"title":"pull request number {i}"}}"#
            ));
        }
        s.push(']');
        s.into_bytes()
    }

    #[test]
    fn inflates_what_gzip_made_at_every_level_and_reuses_the_buffer() {
        let data = json(5_000);
        let mut out = vec![1u8; 10];
        for level in [1, 6, 9] {
            gunzip(&gz(&data, level), &mut out, 1 << 30).unwrap();
            assert!(out == data, "level {level}: {} bytes", out.len());
        }
        gunzip(&gz(b"", 1), &mut out, 1 << 30).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_single_member_takes_the_one_call_path_and_two_members_do_not() {
        let data = json(2_000);
        let one = gz(&data, 1);
        let mut d = Inflater::new().unwrap();
        let mut out = Vec::new();
        assert_eq!(single_member_size(&one, 1 << 30), Some(data.len()));
        assert!(d.whole_single_member(&one, &mut out, data.len()));
        assert!(out == data, "{} bytes", out.len());
        // Two members: libdeflate reads only the first, which is not the whole body.
        let mut two = one.clone();
        two.extend(gz(&data, 1));
        let mut out = Vec::new();
        assert!(!d.whole_single_member(&two, &mut out, data.len()));
        assert!(out.is_empty(), "untouched when refused");
    }

    #[test]
    fn a_header_crc_is_checked() {
        // Found by the fuzz target: every header flag set, a header CRC-16 of zero (wrong),
        // an empty deflate stream with a right data CRC and size. libdeflate took it.
        let body = b"\x1f\x8b\x08\x1f\x8b\x08\x26\x00\x00\x02\x11\x00\x00\x00\x00\x00\
                     \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc6\x0e\x6b\x00\
                     \x00\x0e\xff\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(single_member_size(body, 1 << 20), None);
        let mut out = Vec::new();
        let e = gunzip(body, &mut out, 1 << 20).unwrap_err();
        assert!(
            matches!(&e, GunzipError::Corrupt(m) if m.contains("checksum")),
            "{e}"
        );
    }

    #[test]
    fn a_multi_member_body_is_inflated_whole() {
        // Two members: libdeflate alone would stop after the first one.
        let (a, b) = (json(300), json(200));
        let mut body = gz(&a, 1);
        body.extend(gz(&b, 6));
        let mut out = Vec::new();
        gunzip(&body, &mut out, 1 << 30).unwrap();
        assert!(out == [a.clone(), b].concat(), "{} bytes", out.len());
        // Two equal members: same size and checksum in both trailers.
        let mut twice = gz(&a, 1);
        twice.extend(gz(&a, 1));
        gunzip(&twice, &mut out, 1 << 30).unwrap();
        assert!(out == [a.clone(), a].concat(), "{} bytes", out.len());
    }

    #[test]
    fn corrupt_truncated_or_lying_bodies_are_errors_not_panics() {
        let data = json(1_000);
        let good = gz(&data, 1);
        let mut out = Vec::new();
        let truncated = &good[..good.len() / 2];
        let e = gunzip(truncated, &mut out, 1 << 30).unwrap_err();
        assert!(
            matches!(&e, GunzipError::Corrupt(m) if m.contains("does not inflate")),
            "{e}"
        );
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        assert!(gunzip(&flipped, &mut out, 1 << 30).is_err());
        // A trailer claiming a huge size is not believed (no 4 GiB allocation).
        let mut lying = good.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(gunzip(&lying, &mut out, 1 << 20).is_err());
        for junk in [&b""[..], b"{", b"not gzip at all, just text of some length"] {
            assert!(gunzip(junk, &mut out, 1 << 20).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_body_inflating_past_the_bound_is_refused_by_both_paths() {
        let data = vec![b' '; 3 << 20];
        let body = gz(&data, 6);
        let mut out = Vec::new();
        // The fast path (ISIZE over the bound) and the streaming one (a lying small ISIZE).
        let e = gunzip(&body, &mut out, 1 << 20).unwrap_err();
        assert!(
            matches!(&e, GunzipError::TooLarge(m) if m.contains("more than 1048576 bytes")),
            "{e}"
        );
        let mut lying = body.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        let e = gunzip(&lying, &mut out, 1 << 20).unwrap_err();
        assert!(matches!(e, GunzipError::TooLarge(_)), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn content_encoding_is_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(encoding(&h), Ok(Encoding::Identity));
        for (v, want) in [
            ("gzip", Ok(Encoding::Gzip)),
            (" GZIP ", Ok(Encoding::Gzip)),
            ("x-gzip", Ok(Encoding::Gzip)),
            ("identity", Ok(Encoding::Identity)),
        ] {
            h.insert(CONTENT_ENCODING, v.parse().unwrap());
            assert_eq!(encoding(&h), want, "{v}");
        }
        h.insert(CONTENT_ENCODING, "br".parse().unwrap());
        let e = encoding(&h).unwrap_err();
        assert!(e.contains("`br`"), "{e}");
    }
}
