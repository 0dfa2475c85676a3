//! Resource quantities (`resource.Quantity`: `500m`, `1.5Gi`, `1e3`):
//! parsing, comparison and the canonical form kube-apiserver stores and
//! answers with (`0.5` becomes `500m`, `1536Mi` stays, `1024Mi` becomes
//! `1Gi`).
//!
//! Values are exact decimals (an `i128` mantissa and a power of ten) rounded
//! up to nano units, as upstream rounds; numbers beyond 38 significant
//! digits are refused rather than approximated.
//!
//! ```
//! use bulwark_api::quantity::Quantity;
//!
//! assert_eq!(Quantity::parse("0.5").unwrap().to_string(), "500m");
//! assert_eq!(Quantity::parse("1.5Gi").unwrap().to_string(), "1536Mi");
//! assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
//! ```

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A quantity that does not parse, with upstream's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not `<number><suffix>`.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The suffix is not one of the known ones.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The number cannot be represented.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// How a quantity prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `m`, `k`, `M`, …
    DecimalSi,
    /// `Ki`, `Mi`, …
    BinarySi,
    /// `e3`, `E-2`, …
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^exponent`, and the format it prints in.
#[derive(Debug, Clone)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
    /// The text as given, which upstream prints back when it judges it
    /// canonical already (`+5`, `5.`, `06m` survive as written).
    text: Option<String>,
}

const NANO: i32 = -9;

impl Quantity {
    /// Parses as upstream's `ParseQuantity`.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let parts = split(text)?;
        let (base2, exponent, format) = suffix(parts.suffix).ok_or(QuantityError::Suffix)?;
        let digits = format!("{}{}", parts.num, parts.denom);
        let digits = digits.trim_start_matches('0');
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError::Numeric)?
        };
        let mut exp10 = -i32::try_from(parts.denom.len()).map_err(|_| QuantityError::Numeric)?;
        let mut format = format;
        if base2 {
            mantissa = mantissa
                .checked_mul(1i128 << exponent)
                .ok_or(QuantityError::Numeric)?;
        } else {
            exp10 = exp10.checked_add(exponent).ok_or(QuantityError::Numeric)?;
        }
        if !parts.positive {
            mantissa = -mantissa;
        }
        let text = kept_text(text, &parts, base2, exponent, format);
        let mut q = Quantity {
            mantissa,
            exponent: exp10,
            format,
            text,
        };
        q.round_up_to_nano();
        if format == Format::BinarySi {
            // Upstream caps binary quantities at the largest int64.
            let max = Quantity {
                mantissa: i128::from(i64::MAX),
                exponent: 0,
                format,
                text: None,
            };
            if q > max {
                q = max;
            }
            let one = Quantity {
                mantissa: 1,
                exponent: 0,
                format,
                text: None,
            };
            if q.mantissa > 0 && q < one {
                format = Format::DecimalSi;
                q.format = format;
            }
        }
        Ok(q)
    }

    /// Parses a JSON value as upstream's `Quantity.UnmarshalJSON` does
    /// (strings and bare numbers; `null` is zero).
    pub fn from_json(v: &Value) -> Result<Quantity, QuantityError> {
        match v {
            Value::Null => Ok(Quantity::zero()),
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => Err(QuantityError::Format),
        }
    }

    /// Zero.
    pub fn zero() -> Quantity {
        Quantity {
            mantissa: 0,
            exponent: 0,
            format: Format::DecimalSi,
            text: None,
        }
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in thousandths, rounded up (`MilliValue`), saturating.
    pub fn milli_value(&self) -> i64 {
        self.scaled(-3)
    }

    /// The value in units, rounded up (`Value`), saturating.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// Rounds up (away from zero) to multiples of 10^scale
    /// (`RoundUp(scale)`), as `SetDefaults_ResourceList` does with -3.
    pub fn round_up(&mut self, scale: i32) {
        if self.exponent >= scale {
            return;
        }
        self.text = None;
        let shift = (scale - self.exponent).unsigned_abs();
        let divisor = 10i128.checked_pow(shift);
        self.mantissa = match divisor {
            Some(d) => {
                let q = self.mantissa / d;
                if self.mantissa % d == 0 {
                    q
                } else {
                    q + self.mantissa.signum()
                }
            }
            None => self.mantissa.signum(),
        };
        self.exponent = scale;
    }

    /// The sum (`Add`): exact, saturating at the largest representable
    /// magnitude; the result prints in `self`'s format (or `other`'s when
    /// `self` is zero, as upstream).
    pub fn add(&self, other: &Quantity) -> Quantity {
        let format = if self.mantissa == 0 {
            other.format
        } else {
            self.format
        };
        let exponent = self.exponent.min(other.exponent);
        let scale = |q: &Quantity| {
            10i128
                .checked_pow((q.exponent - exponent).unsigned_abs())
                .and_then(|f| q.mantissa.checked_mul(f))
        };
        let mantissa = match (scale(self), scale(other)) {
            (Some(a), Some(b)) => a.saturating_add(b),
            _ => i128::MAX,
        };
        Quantity {
            mantissa,
            exponent,
            format,
            text: None,
        }
    }

    /// `self - other`, or zero if that would be negative
    /// (`SubtractWithNonNegativeResult`).
    pub fn saturating_sub(&self, other: &Quantity) -> Quantity {
        if other >= self {
            return Quantity {
                format: self.format,
                ..Quantity::zero()
            };
        }
        let negated = Quantity {
            mantissa: -other.mantissa,
            exponent: other.exponent,
            format: other.format,
            text: None,
        };
        self.add(&negated)
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    fn round_up_to_nano(&mut self) {
        if self.mantissa != 0 {
            self.round_up(NANO);
        }
    }

    fn scaled(&self, scale: i32) -> i64 {
        let mut q = self.clone();
        q.round_up(scale);
        let shift = (q.exponent - scale).unsigned_abs();
        let v = 10i128
            .checked_pow(shift)
            .and_then(|f| q.mantissa.checked_mul(f))
            .unwrap_or(if q.mantissa < 0 { i128::MIN } else { i128::MAX });
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// The mantissa with all factors of ten moved to the exponent.
    fn normalized(&self) -> (i128, i32) {
        let (mut m, mut e) = (self.mantissa, self.exponent);
        if m == 0 {
            return (0, 0);
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        (m, e)
    }

    /// The exact integer value, if the quantity is a whole number that fits.
    fn as_integer(&self) -> Option<i128> {
        let (m, e) = self.normalized();
        if e < 0 {
            return None;
        }
        10i128
            .checked_pow(e.unsigned_abs())
            .and_then(|f| m.checked_mul(f))
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// Compares values (formats aside).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, ae) = self.normalized();
        let (b, be) = other.normalized();
        if a.signum() != b.signum() {
            return a.signum().cmp(&b.signum());
        }
        // Bring both to the smaller exponent; if that overflows, the one
        // with the larger exponent has the larger magnitude.
        let e = ae.min(be);
        let scale = |m: i128, me: i32| {
            10i128
                .checked_pow((me - e).unsigned_abs())
                .and_then(|f| m.checked_mul(f))
        };
        match (scale(a, ae), scale(b, be)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (None, _) => {
                if a > 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (_, None) => {
                if b > 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form (`CanonicalizeBytes`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.text {
            return f.write_str(text);
        }
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySi {
            // Small or fractional binary quantities print as decimal ones.
            let bound = |mantissa| Quantity {
                mantissa,
                exponent: 0,
                format,
                text: None,
            };
            let small = *self > bound(-1024) && *self < bound(1024);
            if small || self.as_integer().is_none() {
                format = Format::DecimalSi;
            }
        }
        if format == Format::BinarySi {
            let mut v = self.as_integer().unwrap_or_default();
            let mut power = 0;
            while v != 0 && v % 1024 == 0 && power < 6 {
                v /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{v}{suffix}");
        }
        let (mut m, mut e) = self.normalized();
        while e % 3 != 0 {
            m = m.saturating_mul(10);
            e -= 1;
        }
        let suffix = match format {
            Format::DecimalExponent if e == 0 => String::new(),
            Format::DecimalExponent => format!("e{e}"),
            _ => match e {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                18 => "E",
                // Upstream finds no suffix and prints none.
                _ => "",
            }
            .to_owned(),
        };
        write!(f, "{m}{suffix}")
    }
}

/// The pieces of a quantity's text, as upstream's `parseQuantityString`
/// splits them.
struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    let zero = Parts {
        positive,
        num: "0",
        denom: "",
        suffix: "",
    };
    if pos >= end {
        return Ok(zero);
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    if pos >= end {
        return Ok(Parts { num, ..zero });
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(Parts { num, denom, ..zero });
        }
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..end],
    })
}

/// The given text, when upstream's parser keeps it as the printed form:
/// exactly representable in an int64 at nano scale or coarser, and already
/// looking canonical (a multiple-of-three scale without trailing `000` for
/// decimals, a power-of-1024 suffix over a value not divisible by 8 for
/// binary).
fn kept_text(
    text: &str,
    parts: &Parts<'_>,
    base2: bool,
    exponent: i32,
    format: Format,
) -> Option<String> {
    let digits = parts.num.len() + parts.denom.len();
    let precision: i64 = if format == Format::BinarySi {
        if exponent < 0 || !parts.denom.is_empty() {
            return None;
        }
        15 - parts.num.len() as i64 - i64::from(exponent * 3 / 10) - 1
    } else {
        18 - digits as i64
    };
    if precision < 0 {
        return None;
    }
    let scale = if base2 { 0 } else { exponent } - parts.denom.len() as i32;
    if scale < NANO {
        return None;
    }
    let shifted = format!("{}{}", parts.num, parts.denom);
    let value: i64 = shifted.parse().ok()?;
    let multiplier: i64 = if base2 {
        1i64.checked_shl(exponent.unsigned_abs())?
    } else {
        1
    };
    value.checked_mul(multiplier)?;
    let keep = if format == Format::BinarySi {
        exponent % 10 == 0 && value & 0x07 != 0
    } else {
        scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
    };
    keep.then(|| text.to_owned())
}

/// `(binary, exponent, format)` of a suffix.
fn suffix(s: &str) -> Option<(bool, i32, Format)> {
    let decimal = |e| Some((false, e, Format::DecimalSi));
    let binary = |e| Some((true, e, Format::BinarySi));
    match s {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i64 = s[1..].parse().ok()?;
            Some((false, i32::try_from(e).ok()?, Format::DecimalExponent))
        }
        _ => None,
    }
}

// ---- quantities inside objects ----

/// Rewrites every resource quantity of an object in canonical form, and
/// rounds resource lists up to milli units, as a typed decode followed by
/// `SetDefaults_ResourceList` does upstream. Fails on the first quantity
/// that does not parse (a 400 upstream).
pub fn canonicalize_quantities(
    api_version: &str,
    kind: &str,
    obj: &mut Value,
) -> Result<(), QuantityError> {
    let lists: &[&str] = match (api_version, kind) {
        ("v1", "Pod") => &["/spec"],
        ("v1", "PodTemplate") => &["/template/spec"],
        ("v1", "ReplicationController")
        | ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch/v1", "Job") => &["/spec/template/spec"],
        ("batch/v1", "CronJob") => &["/spec/jobTemplate/spec/template/spec"],
        _ => &[],
    };
    for path in lists {
        if let Some(spec) = obj.pointer_mut(path) {
            pod_spec_quantities(spec)?;
        }
    }
    let resource_lists: &[&str] = match (api_version, kind) {
        ("v1", "Node") => &["/status/capacity", "/status/allocatable"],
        ("v1", "ResourceQuota") => &["/spec/hard", "/status/hard", "/status/used"],
        ("v1", "PersistentVolume") => &["/spec/capacity"],
        ("v1", "PersistentVolumeClaim") => &[
            "/spec/resources/requests",
            "/spec/resources/limits",
            "/status/capacity",
            "/status/allocatedResources",
        ],
        _ => &[],
    };
    for path in resource_lists {
        if let Some(list) = obj.pointer_mut(path) {
            resource_list(list)?;
        }
    }
    if (api_version, kind) == ("v1", "LimitRange")
        && let Some(Value::Array(items)) = obj.pointer_mut("/spec/limits")
    {
        for item in items {
            for key in [
                "max",
                "min",
                "default",
                "defaultRequest",
                "maxLimitRequestRatio",
            ] {
                if let Some(list) = item.get_mut(key) {
                    resource_list(list)?;
                }
            }
        }
    }
    if (api_version, kind) == ("apps/v1", "StatefulSet")
        && let Some(Value::Array(claims)) = obj.pointer_mut("/spec/volumeClaimTemplates")
    {
        for claim in claims {
            for path in ["/spec/resources/requests", "/spec/resources/limits"] {
                if let Some(list) = claim.pointer_mut(path) {
                    resource_list(list)?;
                }
            }
        }
    }
    Ok(())
}

fn pod_spec_quantities(spec: &mut Value) -> Result<(), QuantityError> {
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(key) {
            for c in containers {
                for list in ["limits", "requests"] {
                    if let Some(l) = c.pointer_mut(&format!("/resources/{list}")) {
                        resource_list(l)?;
                    }
                }
            }
        }
    }
    for path in ["/overhead", "/resources/limits", "/resources/requests"] {
        if let Some(l) = spec.pointer_mut(path) {
            resource_list(l)?;
        }
    }
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for v in volumes {
            if let Some(size) = v.pointer_mut("/emptyDir/sizeLimit") {
                *size = Value::String(Quantity::from_json(size)?.to_string());
            }
        }
    }
    Ok(())
}

/// A `ResourceList`: each quantity rounded up to milli units, canonical.
fn resource_list(list: &mut Value) -> Result<(), QuantityError> {
    if let Some(m) = list.as_object_mut() {
        for v in m.values_mut() {
            let mut q = Quantity::from_json(v)?;
            q.round_up(-3);
            *v = Value::String(q.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
