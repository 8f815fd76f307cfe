//! `Link` header parsing: any header text must give `None` or a URL taken verbatim from
//! between `<` and `>`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(url) = flowctl_github::http::next_link(text) {
        assert!(
            text.contains(&format!("<{url}>")),
            "{url:?} not in {text:?}"
        );
    }
});
