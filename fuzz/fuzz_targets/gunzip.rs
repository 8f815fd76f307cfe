//! Response-body inflation: any bytes must give an error or exactly what flate2's
//! streaming decoder makes of them (the one-call libdeflate path included), never a
//! panic, and never more than the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![b'x'; 3];
    let got = flowctl_github::gunzip::gunzip(data, &mut out, MAX);
    let mut reference = Vec::new();
    let r = flate2::read::MultiGzDecoder::new(data)
        .take(MAX as u64 + 1)
        .read_to_end(&mut reference);
    match (got, r) {
        (Ok(()), Ok(_)) => {
            assert!(out.len() <= MAX);
            assert!(out == reference, "{} vs {} bytes", out.len(), reference.len());
        }
        (Ok(()), Err(e)) => panic!("inflated what flate2 rejects ({e})"),
        (Err(e), Ok(_)) if reference.len() <= MAX => {
            panic!("refused ({e}) what flate2 inflates to {} bytes", reference.len())
        }
        (Err(_), _) => assert!(out.is_empty(), "a refused body leaves no output"),
    }
});
