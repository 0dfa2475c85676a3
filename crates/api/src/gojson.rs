//! The syntax errors Go's `encoding/json` reports, which kube-apiserver
//! passes on in 400 answers (`invalid character 'x' looking for beginning of
//! value`, `unexpected end of JSON input`).
//!
//! A byte-wise state machine with Go's states, so the first offending byte
//! and the context word match.

/// Go's maximum nesting depth.
const MAX_DEPTH: usize = 10_000;

#[derive(Clone, Copy)]
enum Frame {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside a literal: which one, and how many bytes are matched.
    Literal(&'static [u8], usize),
}

/// `Ok` if Go would parse `data` as JSON, else Go's error message.
pub(crate) fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = State::BeginValue;
    for &c in data {
        state = step(state, c, &mut stack)?;
    }
    // Go's eof(): a number may end at end of input.
    if matches!(state, State::One | State::Zero | State::Dot0 | State::E0) {
        state = if stack.is_empty() {
            State::EndTop
        } else {
            State::EndValue
        };
    }
    match state {
        State::EndTop => Ok(()),
        State::EndValue if stack.is_empty() => Ok(()),
        _ => Err("unexpected end of JSON input".to_owned()),
    }
}

fn error(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\n' => r"'\n'".to_owned(),
        b'\r' => r"'\r'".to_owned(),
        b'\t' => r"'\t'".to_owned(),
        b'\\' => r"'\\'".to_owned(),
        0x07 => r"'\a'".to_owned(),
        0x08 => r"'\b'".to_owned(),
        0x0c => r"'\f'".to_owned(),
        0x0b => r"'\v'".to_owned(),
        c if c < 0x20 || c == 0x7f => format!(r"'\x{c:02x}'"),
        // Go turns the byte into the rune of the same number.
        c => format!("'{}'", char::from(c)),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn step(state: State, c: u8, stack: &mut Vec<Frame>) -> Result<State, String> {
    use State::*;
    Ok(match state {
        BeginValueOrEmpty if is_space(c) => BeginValueOrEmpty,
        BeginValueOrEmpty if c == b']' => end_value(c, stack)?,
        BeginValueOrEmpty => begin_value(c, stack)?,
        BeginValue => begin_value(c, stack)?,
        BeginStringOrEmpty if is_space(c) => BeginStringOrEmpty,
        BeginStringOrEmpty if c == b'}' => {
            // An empty object: its key frame ends it.
            if let Some(top) = stack.last_mut() {
                *top = Frame::ObjectValue;
            }
            end_value(c, stack)?
        }
        BeginStringOrEmpty | BeginString => {
            if is_space(c) {
                BeginString
            } else if c == b'"' {
                InString
            } else {
                return Err(error(c, "looking for beginning of object key string"));
            }
        }
        EndValue => end_value(c, stack)?,
        EndTop => {
            if is_space(c) {
                EndTop
            } else {
                return Err(error(c, "after top-level value"));
            }
        }
        InString => match c {
            b'"' => after_value(stack),
            b'\\' => InStringEsc,
            c if c < 0x20 => return Err(error(c, "in string literal")),
            _ => InString,
        },
        InStringEsc => match c {
            b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => InString,
            b'u' => InStringEscU(0),
            _ => return Err(error(c, "in string escape code")),
        },
        InStringEscU(n) => {
            if !c.is_ascii_hexdigit() {
                return Err(error(c, "in \\u hexadecimal character escape"));
            }
            if n == 3 {
                InString
            } else {
                InStringEscU(n + 1)
            }
        }
        Neg => match c {
            b'0' => Zero,
            b'1'..=b'9' => One,
            _ => return Err(error(c, "in numeric literal")),
        },
        One if c.is_ascii_digit() => One,
        One | Zero => match c {
            b'.' => Dot,
            b'e' | b'E' => E,
            _ => end_value(c, stack)?,
        },
        Dot => {
            if c.is_ascii_digit() {
                Dot0
            } else {
                return Err(error(c, "after decimal point in numeric literal"));
            }
        }
        Dot0 => match c {
            b'0'..=b'9' => Dot0,
            b'e' | b'E' => E,
            _ => end_value(c, stack)?,
        },
        E if c == b'+' || c == b'-' => ESign,
        E | ESign => {
            if c.is_ascii_digit() {
                E0
            } else {
                return Err(error(c, "in exponent of numeric literal"));
            }
        }
        E0 if c.is_ascii_digit() => E0,
        E0 => end_value(c, stack)?,
        Literal(word, matched) => {
            if c != word[matched] {
                let name = String::from_utf8_lossy(word);
                return Err(error(
                    c,
                    &format!(
                        "in literal {name} (expecting {})",
                        quote_char(word[matched])
                    ),
                ));
            }
            if matched + 1 == word.len() {
                after_value(stack)
            } else {
                Literal(word, matched + 1)
            }
        }
    })
}

fn begin_value(c: u8, stack: &mut Vec<Frame>) -> Result<State, String> {
    use State::*;
    Ok(match c {
        c if is_space(c) => BeginValue,
        b'{' => {
            push(stack, Frame::ObjectKey)?;
            BeginStringOrEmpty
        }
        b'[' => {
            push(stack, Frame::ArrayValue)?;
            BeginValueOrEmpty
        }
        b'"' => InString,
        b'-' => Neg,
        b'0' => Zero,
        b'1'..=b'9' => One,
        b't' => Literal(b"true", 1),
        b'f' => Literal(b"false", 1),
        b'n' => Literal(b"null", 1),
        _ => return Err(error(c, "looking for beginning of value")),
    })
}

fn push(stack: &mut Vec<Frame>, f: Frame) -> Result<(), String> {
    if stack.len() >= MAX_DEPTH {
        return Err("exceeded max depth".to_owned());
    }
    stack.push(f);
    Ok(())
}

/// The state after a complete value: at the top level, or inside a container.
fn after_value(stack: &[Frame]) -> State {
    if stack.is_empty() {
        State::EndTop
    } else {
        State::EndValue
    }
}

fn end_value(c: u8, stack: &mut Vec<Frame>) -> Result<State, String> {
    let Some(top) = stack.last_mut() else {
        return if is_space(c) {
            Ok(State::EndTop)
        } else {
            Err(error(c, "after top-level value"))
        };
    };
    if is_space(c) {
        return Ok(State::EndValue);
    }
    match (*top, c) {
        (Frame::ObjectKey, b':') => {
            *top = Frame::ObjectValue;
            Ok(State::BeginValue)
        }
        (Frame::ObjectKey, _) => Err(error(c, "after object key")),
        (Frame::ObjectValue, b',') => {
            *top = Frame::ObjectKey;
            Ok(State::BeginString)
        }
        (Frame::ObjectValue, b'}') | (Frame::ArrayValue, b']') => {
            stack.pop();
            Ok(after_value(stack))
        }
        (Frame::ObjectValue, _) => Err(error(c, "after object key:value pair")),
        (Frame::ArrayValue, b',') => Ok(State::BeginValue),
        (Frame::ArrayValue, _) => Err(error(c, "after array element")),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn go_messages() {
        let cases = [
            "{}",
            " [1, 2.5e-3, -0, true, false, null, \"a\\u00e9\"] ",
            "",
            "   ",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{bad",
            "{\"a\" 1}",
            "{\"a\":1 \"b\"}",
            "[1 2]",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "nul",
            "nulx",
            "tru",
            "fals3",
            "01",
            "-",
            "-x",
            "1.",
            "1.x",
            "1e",
            "1e+",
            "1ex",
            "\"a\\q\"",
            "\"\\u12g4\"",
            "\"a\nb\"",
            "{} {}",
            "'a'",
            "[1]]",
            "{\"a\":1}}",
            "\u{e9}",
            "[}",
        ];
        let out: Vec<String> = cases
            .iter()
            .map(|c| {
                format!(
                    "{c:?} => {}",
                    check_valid(c.as_bytes())
                        .err()
                        .unwrap_or_else(|| "ok".to_owned())
                )
            })
            .collect();
        expect![[r#"
            "{}" => ok
            " [1, 2.5e-3, -0, true, false, null, \"a\\u00e9\"] " => ok
            "" => unexpected end of JSON input
            "   " => unexpected end of JSON input
            "{" => unexpected end of JSON input
            "{\"a\"" => unexpected end of JSON input
            "{\"a\":" => unexpected end of JSON input
            "{\"a\":1" => unexpected end of JSON input
            "{bad" => invalid character 'b' looking for beginning of object key string
            "{\"a\" 1}" => invalid character '1' after object key
            "{\"a\":1 \"b\"}" => invalid character '"' after object key:value pair
            "[1 2]" => invalid character '2' after array element
            "[1,]" => invalid character ']' looking for beginning of value
            "[,1]" => invalid character ',' looking for beginning of value
            "{\"a\":1,}" => invalid character '}' looking for beginning of object key string
            "nul" => unexpected end of JSON input
            "nulx" => invalid character 'x' in literal null (expecting 'l')
            "tru" => unexpected end of JSON input
            "fals3" => invalid character '3' in literal false (expecting 'e')
            "01" => invalid character '1' after top-level value
            "-" => unexpected end of JSON input
            "-x" => invalid character 'x' in numeric literal
            "1." => unexpected end of JSON input
            "1.x" => invalid character 'x' after decimal point in numeric literal
            "1e" => unexpected end of JSON input
            "1e+" => unexpected end of JSON input
            "1ex" => invalid character 'x' in exponent of numeric literal
            "\"a\\q\"" => invalid character 'q' in string escape code
            "\"\\u12g4\"" => invalid character 'g' in \u hexadecimal character escape
            "\"a\nb\"" => invalid character '\n' in string literal
            "{} {}" => invalid character '{' after top-level value
            "'a'" => invalid character '\'' looking for beginning of value
            "[1]]" => invalid character ']' after top-level value
            "{\"a\":1}}" => invalid character '}' after top-level value
            "é" => invalid character 'Ã' looking for beginning of value
            "[}" => invalid character '}' looking for beginning of value"#]]
        .assert_eq(&out.join("\n"));
    }
}
