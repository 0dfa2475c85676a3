//! Line numbers for field paths, so a refused file's messages say where.
//!
//! `serde_yaml_ng`'s value tree carries no positions, so when validation
//! fails the text is walked once more with an event parser that has them,
//! recording the line each field path starts on. Only the error path pays.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

/// The 1-based line each field path (`resources[0].providers[1].aescbc`)
/// starts on: a mapping entry at its key, a list element at its value.
/// Best effort: text the event parser cannot read yields fewer entries.
pub(crate) fn lines(text: &str) -> HashMap<String, usize> {
    let mut found = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let line = span.start.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = stack.last_mut()
                {
                    let child = join(path, &value);
                    found.entry(child.clone()).or_insert(line);
                    *key = Some(child);
                    continue;
                }
                let path = node_path(&stack);
                found.entry(path).or_insert(line);
                finished(&mut stack);
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some("<alias>".to_string());
                    continue;
                }
                finished(&mut stack);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = node_path(&stack);
                found.entry(path.clone()).or_insert(line);
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                finished(&mut stack);
            }
            _ => {}
        }
    }
    found
}

/// A collection being walked.
enum Frame {
    /// A mapping; `key` is the path of the entry whose value comes next.
    Map { path: String, key: Option<String> },
    /// A list; `index` is the element that comes next.
    Seq { path: String, index: usize },
}

/// The path of the node that starts now, given where the walk is.
fn node_path(stack: &[Frame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(Frame::Map { key: Some(k), .. }) => k.clone(),
        // A complex (non-scalar) mapping key: nothing to name it by.
        Some(Frame::Map { path, key: None }) => join(path, "<key>"),
        Some(Frame::Seq { path, index }) => format!("{path}[{index}]"),
    }
}

/// A node just ended: the enclosing collection moves to its next entry.
fn finished(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { index, .. }) => *index += 1,
        None => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The line of `path`, or of its nearest enclosing field that has one
/// (a missing field is reported where its parent is).
pub(crate) fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut path = path;
    loop {
        if let Some(line) = lines.get(path) {
            return Some(*line);
        }
        let cut = path.rfind(['.', '['])?;
        path = &path[..cut];
    }
}
