//! A linear pre-scan for flow nesting (`[` / `{`), run before any YAML parser sees the
//! text: both parsers take quadratic time on deep flow nesting (50,000 `[` fit in the
//! size cap and took ~50 s), and no real spec nests more than a handful of levels.
//!
//! The scan is deliberately approximate but errs towards *not* counting: quoted
//! scalars, comments and block scalars (`|`, `>`) are skipped, and outside a flow
//! collection a bracket counts only where a flow node may start. The parsers still
//! judge the document; this only refuses documents no parser should be given.

use super::positions::Pos;

/// Deeper flow nesting than this is refused. serde_yaml's own recursion limit is 128.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Where the flow nesting first goes deeper than [`MAX_FLOW_DEPTH`], if it does.
pub fn too_deep(text: &str) -> Option<Pos> {
    let b = text.as_bytes();
    let mut s = Scan {
        b,
        i: 0,
        depth: 0,
        line_start: 0,
    };
    s.run().map(|i| position(text, i))
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    line_start: usize,
}

impl Scan<'_> {
    /// Byte offset of the bracket that went too deep.
    fn run(&mut self) -> Option<usize> {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match c {
                b'\n' => self.newline(),
                b'#' if self.after_space() => self.skip_line(),
                b'"' | b'\'' if self.quote_may_start() => self.skip_quoted(c),
                b'[' | b'{' if self.depth > 0 || self.node_may_start() => {
                    self.depth += 1;
                    if self.depth > MAX_FLOW_DEPTH {
                        return Some(self.i);
                    }
                    self.i += 1;
                }
                b']' | b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    self.i += 1;
                }
                b'|' | b'>' if self.depth == 0 && self.node_may_start() => self.skip_block_scalar(),
                _ => self.i += 1,
            }
        }
        None
    }

    fn newline(&mut self) {
        self.i += 1;
        self.line_start = self.i;
    }

    /// The last non-blank byte before `i` on this line, if any.
    fn prev(&self) -> Option<u8> {
        self.b[self.line_start..self.i]
            .iter()
            .rev()
            .find(|c| !matches!(c, b' ' | b'\t'))
            .copied()
    }

    fn after_space(&self) -> bool {
        self.i == self.line_start || matches!(self.b[self.i - 1], b' ' | b'\t')
    }

    /// Outside flow, a node starts at the line start or after `:`, `-`, `?` and a blank.
    fn node_may_start(&self) -> bool {
        match self.prev() {
            None => true,
            Some(p) => self.after_space() && matches!(p, b':' | b'-' | b'?'),
        }
    }

    fn quote_may_start(&self) -> bool {
        if self.depth > 0 {
            return self.after_space() || matches!(self.prev(), Some(b'[' | b'{' | b','));
        }
        self.node_may_start()
    }

    fn skip_line(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
    }

    /// From an opening quote past its closing one (`\` escapes in `"`, `''` in `'`).
    fn skip_quoted(&mut self, q: u8) {
        self.i += 1;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'\\' && q == b'"' {
                self.i += 2;
                continue;
            }
            if c == b'\n' {
                self.newline();
                continue;
            }
            self.i += 1;
            if c == q {
                if q == b'\'' && self.b.get(self.i) == Some(&b'\'') {
                    self.i += 1;
                    continue;
                }
                return;
            }
        }
    }

    /// A `|` or `>` block scalar: skip the following lines indented deeper than the
    /// line that introduced it (its content, which may hold any bracket).
    fn skip_block_scalar(&mut self) {
        let indent = self.indent_at(self.line_start);
        self.skip_line();
        while self.i < self.b.len() {
            self.newline();
            let rest = &self.b[self.i..];
            let blank = rest
                .iter()
                .take_while(|c| **c != b'\n')
                .all(|c| matches!(c, b' ' | b'\t' | b'\r'));
            if !blank && self.indent_at(self.i) <= indent {
                return;
            }
            self.skip_line();
        }
    }

    fn indent_at(&self, from: usize) -> usize {
        self.b[from..].iter().take_while(|c| **c == b' ').count()
    }
}

/// 1-based line and column (in characters) of byte offset `i`.
fn position(text: &str, i: usize) -> Pos {
    let before = &text[..i];
    let line = before.bytes().filter(|c| *c == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    Pos {
        line,
        column: text[line_start..i].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(n: usize) -> String {
        format!("a: {}{}\n", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn refuses_deep_flow_at_the_bracket_that_crosses_the_limit() {
        assert_eq!(too_deep(&nest(MAX_FLOW_DEPTH)), None);
        let p = too_deep(&format!("x: 1\n{}", nest(50_000))).unwrap();
        assert_eq!(
            p,
            Pos {
                line: 2,
                column: 4 + MAX_FLOW_DEPTH
            }
        );
        let mixed = format!("a: {}\n", "{k: [".repeat(80));
        assert!(too_deep(&mixed).is_some());
    }

    #[test]
    fn brackets_in_strings_comments_block_scalars_and_plain_text_do_not_count() {
        let many = "[".repeat(500);
        for text in [
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"esc \\\" {many}\"\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: x{many}\n"),
            format!("a: |\n  {many}\n\n  {many}\nb: 1\n"),
            format!("a: [\"{many}\", '{many}']\n"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
        }
        // After a block scalar ends, counting resumes.
        let after = format!("a: >\n  text\nb: {}", "[".repeat(200));
        assert!(too_deep(&after).is_some());
    }

    #[test]
    fn columns_count_characters() {
        let text = format!("é: {}", "[".repeat(200));
        assert_eq!(
            too_deep(&text),
            Some(Pos {
                line: 1,
                column: 4 + MAX_FLOW_DEPTH
            })
        );
    }
}
