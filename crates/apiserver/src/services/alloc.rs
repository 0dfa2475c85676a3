//! The pure part of Service IP and NodePort allocation: a range, a bitmap of
//! what is taken in it, and upstream's `RangeAllocation` encoding of that
//! bitmap. No IO; `super` keeps the bitmaps in the store.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use base64::Engine as _;
use serde_json::{Value, json};

/// An IPv4 network in CIDR notation (`10.43.0.0/16`): the Service IP range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network `address/prefix` (host bits must be zero).
    pub fn new(address: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if !(1..=30).contains(&prefix) {
            return Err(format!(
                "invalid service CIDR {address}/{prefix}: the prefix must be between /1 and /30"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(address) & !mask != 0 {
            return Err(format!(
                "invalid service CIDR {address}/{prefix}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(address) & mask)
            ));
        }
        Ok(Ipv4Cidr {
            network: address,
            prefix,
        })
    }

    /// The `n`-th usable address (0: the one after the network address);
    /// `10.43.0.0/16`'s 0th is `10.43.0.1`, the `kubernetes` Service's.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (n < self.usable()).then(|| Ipv4Addr::from(u32::from(self.network) + 1 + n))
    }

    /// How many addresses Services can have: all but the network and
    /// broadcast addresses, as upstream's allocator counts them.
    pub(crate) fn usable(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The offset of `ip` in the usable addresses, if it is one.
    pub(crate) fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(ip);
        let first = u32::from(self.network) + 1;
        (ip >= first && ip - first < self.usable()).then(|| ip - first)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {text:?}: expected address/prefix"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("invalid CIDR {text:?}: {address:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("invalid CIDR {text:?}: {prefix:?} is not a prefix length"))?;
        Ipv4Cidr::new(address, prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which offsets of a range are taken. Bit `i` is offset `i`, as in
/// upstream's bitmap allocator (a `big.Int`, stored big-endian).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bitmap {
    /// Little-endian words: bit `i` is `words[i / 64] >> (i % 64)`.
    words: Vec<u64>,
}

impl Bitmap {
    pub(crate) fn has(&self, offset: u32) -> bool {
        let (word, bit) = (offset as usize / 64, offset % 64);
        self.words.get(word).is_some_and(|w| w >> bit & 1 == 1)
    }

    pub(crate) fn set(&mut self, offset: u32) {
        let (word, bit) = (offset as usize / 64, offset % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << bit;
    }

    pub(crate) fn clear(&mut self, offset: u32) {
        let (word, bit) = (offset as usize / 64, offset % 64);
        if let Some(w) = self.words.get_mut(word) {
            *w &= !(1 << bit);
        }
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    /// The taken offsets, ascending.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, word)| {
            (0..64u32)
                .filter(move |bit| word >> bit & 1 == 1)
                .map(move |bit| i as u32 * 64 + bit)
        })
    }

    /// A free offset below `size` for a dynamic allocation, as upstream
    /// picks one: the lowest `reserved` offsets are kept for requested
    /// (static) values while the upper band has room; a scan from a random
    /// start in the upper band, then in the lower.
    pub(crate) fn next_free(&self, size: u32, reserved: u32, start: u32) -> Option<u32> {
        let reserved = reserved.min(size);
        let scan = |from: u32, to: u32| -> Option<u32> {
            let len = to - from;
            if len == 0 {
                return None;
            }
            let start = start % len;
            (0..len)
                .map(|i| from + (start + i) % len)
                .find(|&o| !self.has(o))
        };
        scan(reserved, size).or_else(|| scan(0, reserved))
    }

    /// upstream's `big.Int.Bytes()`: big-endian, no leading zero bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .words
            .iter()
            .rev()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let first = out.iter().position(|&b| b != 0).unwrap_or(out.len());
        out.drain(..first);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = Vec::with_capacity(bytes.len() / 8 + 1);
        for chunk in bytes.rchunks(8) {
            let mut word = [0u8; 8];
            word[8 - chunk.len()..].copy_from_slice(chunk);
            words.push(u64::from_be_bytes(word));
        }
        let mut bitmap = Bitmap { words };
        while bitmap.words.last() == Some(&0) {
            bitmap.words.pop();
        }
        bitmap
    }
}

/// The size of the band kept for requested values, upstream's formula
/// `min(max(min, size / step), max)` (Service IPs: 16, /16, 256; NodePorts:
/// 16, /32, 128).
pub(crate) fn reserved_band(size: u32, min: u32, step: u32, max: u32) -> u32 {
    (size / step).max(min).min(max)
}

/// The stored form: a `v1 RangeAllocation` as kube-apiserver keeps at
/// `/registry/ranges/serviceips` and `/registry/ranges/servicenodeports`.
pub(crate) fn encode(range: &str, bitmap: &Bitmap) -> Value {
    json!({
        "kind": "RangeAllocation",
        "apiVersion": "v1",
        "metadata": {"creationTimestamp": null},
        "range": range,
        "data": base64::engine::general_purpose::STANDARD.encode(bitmap.to_bytes()),
    })
}

/// The bitmap of a stored `RangeAllocation`, and the range it was for.
pub(crate) fn decode(value: &[u8]) -> Option<(String, Bitmap)> {
    let object: Value = serde_json::from_slice(value).ok()?;
    let range = object.get("range")?.as_str()?.to_owned();
    let data = object.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    Some((range, Bitmap::from_bytes(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_count_usable_addresses() {
        let cidr: Ipv4Cidr = "10.43.0.0/16".parse().unwrap();
        assert_eq!(cidr.nth(0), Some(Ipv4Addr::new(10, 43, 0, 1)));
        assert_eq!(cidr.nth(9), Some(Ipv4Addr::new(10, 43, 0, 10)));
        assert_eq!(cidr.usable(), 65534);
        assert_eq!(cidr.nth(65534), None);
        assert_eq!(cidr.offset(Ipv4Addr::new(10, 43, 255, 254)), Some(65533));
        assert_eq!(cidr.offset(Ipv4Addr::new(10, 43, 255, 255)), None);
        assert_eq!(cidr.offset(Ipv4Addr::new(10, 43, 0, 0)), None);
        assert_eq!(cidr.offset(Ipv4Addr::new(10, 44, 0, 1)), None);
        assert_eq!(cidr.to_string(), "10.43.0.0/16");
        assert!(
            "10.43.0.1/16"
                .parse::<Ipv4Cidr>()
                .unwrap_err()
                .contains("did you mean 10.43.0.0/16")
        );
        assert!("10.43.0.0".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn bitmaps_round_trip_as_big_endian_integers() {
        let mut bitmap = Bitmap::default();
        for offset in [0, 9, 64, 65533] {
            bitmap.set(offset);
        }
        let stored = encode("10.43.0.0/16", &bitmap);
        let (range, back) = decode(stored.to_string().as_bytes()).unwrap();
        assert_eq!(range, "10.43.0.0/16");
        assert_eq!(back, bitmap);
        assert_eq!(back.offsets().collect::<Vec<_>>(), vec![0, 9, 64, 65533]);
        // Offsets 0 and 9 only: 0b10_0000_0001 as Go's big.Int.Bytes() writes it.
        let mut small = Bitmap::default();
        small.set(0);
        small.set(9);
        assert_eq!(small.to_bytes(), vec![0x02, 0x01]);
        small.clear(9);
        small.clear(0);
        assert_eq!(small, Bitmap::default());
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_band() {
        let mut bitmap = Bitmap::default();
        let reserved = reserved_band(100, 16, 16, 256);
        assert_eq!(reserved, 16);
        for _ in 0..84 {
            let offset = bitmap.next_free(100, reserved, 7).unwrap();
            assert!(offset >= 16, "{offset} is in the static band");
            bitmap.set(offset);
        }
        // The upper band is full: the lower one is used, then nothing.
        for _ in 0..16 {
            let offset = bitmap.next_free(100, reserved, 3).unwrap();
            assert!(offset < 16);
            bitmap.set(offset);
        }
        assert_eq!(bitmap.next_free(100, reserved, 0), None);
    }
}
