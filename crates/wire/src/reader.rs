//! A minimal protobuf wire reader: varints, length-delimited payloads and
//! skipping of fixed32/fixed64. It knows nothing of schemas.
//!
//! Offsets in errors are absolute: counted from the first byte of the body
//! (magic included), so a user can find the spot with `xxd`.

use crate::WireError;

/// Protobuf wire types that Kubernetes' encoding uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl WireType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// A cursor over one message's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The absolute offset of `buf[0]` in the whole body.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.offset();
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated {
                    what: "varint",
                    offset: start,
                });
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(WireError::VarintOverflow { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow { offset: start })
    }

    /// A field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u64, WireType), WireError> {
        let offset = self.offset();
        let key = self.varint()?;
        let number = key >> 3;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            other => {
                return Err(WireError::UnsupportedWireType {
                    wire_type: other as u8,
                    offset,
                });
            }
        };
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::BadFieldNumber { number, offset });
        }
        Ok((number, wire_type))
    }

    /// A length-delimited payload, as a reader of its own.
    pub(crate) fn len_delimited(&mut self) -> Result<Reader<'a>, WireError> {
        let start = self.offset();
        let len = self.varint()?;
        let begin = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| begin.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated {
                what: "length-delimited field",
                offset: start,
            })?;
        self.pos = end;
        Ok(Reader::new(&self.buf[begin..end], self.base + begin))
    }

    /// The rest of this reader's bytes.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        rest
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let bytes = self.take(8, "fixed64")?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    pub(crate) fn fixed32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4, "fixed32")?;
        let mut array = [0; 4];
        array.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(array))
    }

    /// Skips one value of this wire type.
    pub(crate) fn skip(&mut self, wire_type: WireType) -> Result<(), WireError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed64().map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::Fixed32 => self.fixed32().map(drop),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let offset = self.offset();
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated { what, offset })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut r = Reader::new(&[0x96, 0x01, 0x00, 0x7f], 0);
        assert_eq!(r.varint().unwrap(), 150);
        assert_eq!(r.varint().unwrap(), 0);
        assert_eq!(r.varint().unwrap(), 127);
        assert!(r.is_empty());
        // -1 as int64: ten bytes.
        let mut bytes = vec![0xff; 9];
        bytes.push(0x01);
        assert_eq!(Reader::new(&bytes, 0).varint().unwrap() as i64, -1);
    }

    #[test]
    fn varint_errors_name_the_offset() {
        let err = Reader::new(&[0x80, 0x80], 7).varint().unwrap_err();
        assert_eq!(err.to_string(), "truncated varint at byte 7");
        let err = Reader::new(&[0xff; 11], 0).varint().unwrap_err();
        assert_eq!(err.to_string(), "varint at byte 0 is longer than 64 bits");
    }

    #[test]
    fn length_delimited_past_the_end() {
        let err = Reader::new(&[0x05, 1, 2], 4).len_delimited().unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated length-delimited field at byte 4"
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(Reader::new(&huge, 0).len_delimited().is_err());
    }

    #[test]
    fn keys() {
        let mut r = Reader::new(&[0x0a, 0x10, 0x1d, 0x0b], 0);
        assert_eq!(r.key().unwrap(), (1, WireType::Len));
        assert_eq!(r.key().unwrap(), (2, WireType::Varint));
        assert_eq!(r.key().unwrap(), (3, WireType::Fixed32));
        let err = r.key().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported wire type 3 (groups) at byte 3"
        );
        assert!(Reader::new(&[0x00], 0).key().is_err());
    }
}
