//! Where each field of a YAML document is: `spec.components[1].traits[0]`
//! -> line 14, column 11, so that every finding (the engine's, mapped to its
//! OAM path, included) can point at its line for editors and merge-request
//! annotations.
//!
//! A second, position-only parse with yaml-rust2's event API (serde_norway,
//! which reads the values, keeps no positions). A document it cannot parse
//! simply has no positions; the values are never taken from here.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// The field paths of one document and where each starts (for a mapping
/// entry: its key; for a sequence item: the item).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    at: HashMap<String, Pos>,
    /// Where the document starts: the answer for the root and for paths
    /// with no known prefix.
    start: Option<Pos>,
}

impl Positions {
    /// The position of `path`, or of its longest prefix that exists (a
    /// missing field is reported where it belongs, at its parent).
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.at.get(p) {
                return Some(*pos);
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = p.get(..i).unwrap_or(""),
                None => return self.start,
            }
        }
    }
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next; `None`: the next node is a key.
        key: Option<String>,
        /// A sequence item that is this mapping, recorded at its first key:
        /// yaml-rust2 marks a block mapping's start after that key.
        pending: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    docs: Vec<Positions>,
    cur: Positions,
    stack: Vec<Frame>,
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

impl Walker {
    /// A node starts at `m`: the path it sits at, recorded (unless
    /// `defer`: a mapping records its item path at its first key); `None`
    /// for a mapping key (which becomes the pending key of its mapping).
    fn node(&mut self, m: Marker, key_text: Option<&str>, defer: bool) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                if !defer {
                    self.cur.at.entry(p.clone()).or_insert(pos(m));
                }
                Some(p)
            }
            Some(Frame::Map { path, key, pending }) => match key.take() {
                None => {
                    if let Some((item, _)) = pending.take() {
                        self.cur.at.entry(item).or_insert(pos(m));
                    }
                    // A key: remember it (a non-scalar key gets no path).
                    let k = key_text.unwrap_or("").to_string();
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.cur.at.entry(p).or_insert(pos(m));
                    *key = Some(k);
                    None
                }
                Some(k) => Some(if path.is_empty() {
                    k
                } else {
                    format!("{path}.{k}")
                }),
            },
        }
    }
}

impl Walker {
    /// The document is done: it starts at its first field.
    fn finish(&mut self) {
        let mut doc = std::mem::take(&mut self.cur);
        doc.start = doc.at.values().min().copied();
        self.docs.push(doc);
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, m: Marker) {
        match ev {
            Event::DocumentStart => {
                self.cur = Positions::default();
                self.stack.clear();
            }
            Event::DocumentEnd => self.finish(),
            Event::Scalar(text, ..) => {
                self.node(m, Some(&text), false);
            }
            Event::Alias(_) => {
                self.node(m, None, false);
            }
            Event::MappingStart(..) => {
                let in_seq = matches!(self.stack.last(), Some(Frame::Seq { .. }));
                // A mapping used as a key is walked under no path.
                let path = self.node(m, None, in_seq);
                let pending = path.clone().filter(|_| in_seq).map(|p| (p, pos(m)));
                self.stack.push(Frame::Map {
                    path: path.unwrap_or_else(|| "\u{0}".into()),
                    key: None,
                    pending,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node(m, None, false).unwrap_or_else(|| "\u{0}".into());
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd => {
                // An empty mapping item: its start is all there is.
                if let Some(Frame::Map {
                    pending: Some((item, at)),
                    ..
                }) = self.stack.pop()
                {
                    self.cur.at.entry(item).or_insert(at);
                }
            }
            Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

/// The positions of every document of `text`, in order; documents after a
/// syntax error have none.
pub fn positions(text: &str) -> Vec<Positions> {
    let mut w = Walker::default();
    let mut parser = Parser::new_from_str(text);
    if parser.load(&mut w, true).is_err() && !w.cur.at.is_empty() {
        w.finish();
    }
    w.docs
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_at_keys_and_items() {
        let text = "\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
spec:
  components:
    - name: web
      traits:
        - type: mesh-access
          properties:
            rules:
              - {name: a, paths: [/x, \"/y\"]}
---
kind: Other
list: [1, {a: 2}]
";
        let docs = positions(text);
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        let at = |p: &str| d.find(p).map(|p| (p.line, p.column));
        assert_eq!(at("kind"), Some((2, 1)));
        assert_eq!(at("metadata.name"), Some((4, 3)));
        assert_eq!(at("spec.components[0]"), Some((7, 7)));
        assert_eq!(at("spec.components[0].name"), Some((7, 7)));
        assert_eq!(at("spec.components[0].traits[0].type"), Some((9, 11)));
        assert_eq!(
            at("spec.components[0].traits[0].properties.rules[0].paths[1]"),
            Some((12, 39))
        );
        // A missing field: its parent.
        assert_eq!(
            at("spec.components[0].traits[0].properties.roles[3].name"),
            Some((10, 11))
        );
        assert_eq!(at("nothing.here"), Some((1, 1)));
        assert_eq!(at(""), Some((1, 1)));
        let d2 = &docs[1];
        assert_eq!(d2.find("list[1].a").map(|p| p.line), Some(15));
    }

    #[test]
    fn a_syntax_error_leaves_what_was_read() {
        let docs = positions("a: 1\nb: [\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].find("a").map(|p| p.line), Some(1));
        assert!(positions("").is_empty());
    }
}
