//! Where each node of a YAML document sits in the file. serde_yaml's `Value` carries no
//! positions, so a second, marker-keeping parse (yaml-rust2's event parser) records the
//! line and column of every key and value by JSON pointer; schema errors, which come
//! with an instance pointer, are mapped back through this table.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(m: Marker) -> Pos {
        Pos {
            line: m.line().max(1),
            column: m.col() + 1,
        }
    }
}

/// Position of one node: the key that names it (when it is a mapping value) and the
/// value itself; `plain` is true for unquoted scalars (they may be retyped after
/// `${VAR}` interpolation, as YAML would have typed the text).
#[derive(Debug, Clone, Copy)]
pub struct NodePos {
    pub key: Option<Pos>,
    pub value: Pos,
    pub plain: bool,
}

/// JSON pointer (`/source/orgs/0`) -> position.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<String, NodePos>,
    /// Explicit tags (`!!binary`, `!env`, ...) as written, where they were seen.
    tags: Vec<(String, Pos)>,
}

impl Positions {
    /// Best-effort: a document serde_yaml accepted but this parser does not yields an
    /// empty table, and errors then point at the start of the file.
    pub fn parse(text: &str) -> Positions {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Positions::default();
        }
        Positions {
            nodes: builder.nodes,
            tags: builder.tags,
        }
    }

    /// Every explicit tag in the document (serde_yaml resolves core-schema tags such as
    /// `!!binary` silently, so this parse is what sees them).
    pub fn tags(&self) -> &[(String, Pos)] {
        &self.tags
    }

    pub fn get(&self, pointer: &str) -> Option<&NodePos> {
        self.nodes.get(pointer)
    }

    /// The position of the node at `pointer`, or of its nearest recorded ancestor (nodes
    /// reached through an alias are not recorded). `prefer_key` picks the key's position.
    pub fn locate(&self, pointer: &str, prefer_key: bool) -> Pos {
        let mut p = pointer;
        loop {
            // The document itself: its first line, not wherever its first node starts.
            if p.is_empty() {
                return Pos::START;
            }
            if let Some(n) = self.nodes.get(p) {
                return match (prefer_key, n.key) {
                    (true, Some(k)) => k,
                    _ => n.value,
                };
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos::START,
            }
        }
    }
}

/// Escape one JSON pointer segment (RFC 6901).
pub fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Map {
        ptr: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        ptr: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    nodes: HashMap<String, NodePos>,
    tags: Vec<(String, Pos)>,
    stack: Vec<Frame>,
    /// Depth inside a complex (non-scalar) mapping key, whose contents are not addressed.
    skip: usize,
}

impl Builder {
    /// Where the next node goes: its pointer and key position, or `None` when it is a
    /// mapping key (recorded as pending instead).
    fn place(&mut self, ev: &Event, pos: Pos) -> Option<(String, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((String::new(), None)),
            Some(Frame::Seq { ptr, next }) => {
                let p = format!("{ptr}/{next}");
                *next += 1;
                Some((p, None))
            }
            Some(Frame::Map { ptr, key }) => match key.take() {
                Some((k, kpos)) => Some((format!("{ptr}/{}", escape_segment(&k)), Some(kpos))),
                None => {
                    let k = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        Event::Alias(_) => String::from("<alias>"),
                        _ => {
                            self.skip = 1;
                            String::from("<complex key>")
                        }
                    };
                    *key = Some((k, pos));
                    None
                }
            },
        }
    }

    fn on_skipped(&mut self, ev: &Event) {
        match ev {
            Event::MappingStart(..) | Event::SequenceStart(..) => self.skip += 1,
            Event::MappingEnd | Event::SequenceEnd => self.skip -= 1,
            _ => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if let Event::Scalar(.., Some(t))
        | Event::SequenceStart(_, Some(t))
        | Event::MappingStart(_, Some(t)) = &ev
        {
            self.tags
                .push((format!("{}{}", t.handle, t.suffix), Pos::from_marker(mark)));
        }
        if self.skip > 0 {
            self.on_skipped(&ev);
            return;
        }
        let pos = Pos::from_marker(mark);
        match ev {
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                return;
            }
            Event::Scalar(..)
            | Event::Alias(_)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {}
            _ => return,
        }
        let Some((ptr, key)) = self.place(&ev, pos) else {
            return;
        };
        let plain = matches!(ev, Event::Scalar(_, TScalarStyle::Plain, ..));
        self.nodes.insert(
            ptr.clone(),
            NodePos {
                key,
                value: pos,
                plain,
            },
        );
        match ev {
            Event::MappingStart(..) => self.stack.push(Frame::Map { ptr, key: None }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq { ptr, next: 0 }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_values_and_sequence_items() {
        let text = "name: x\nsource:\n  type: github\n  orgs:\n    - a\n    - \"b\"\n";
        let p = Positions::parse(text);
        let name = p.get("/name").unwrap();
        assert_eq!(name.key, Some(Pos { line: 1, column: 1 }));
        assert_eq!(name.value, Pos { line: 1, column: 7 });
        assert_eq!(p.locate("/source/type", false), Pos { line: 3, column: 9 });
        assert_eq!(
            p.locate("/source/orgs/1", false),
            Pos { line: 6, column: 7 }
        );
        assert!(p.get("/source/orgs/0").unwrap().plain);
        assert!(!p.get("/source/orgs/1").unwrap().plain);
        // Unknown child: nearest ancestor, by its key.
        assert_eq!(p.locate("/source/nope", true), Pos { line: 2, column: 1 });
    }

    #[test]
    fn complex_keys_do_not_confuse_the_walk() {
        let text = "? [a, b]\n: 1\nafter: 2\n";
        let p = Positions::parse(text);
        assert_eq!(p.locate("/after", true), Pos { line: 3, column: 1 });
    }
}
