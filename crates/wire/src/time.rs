//! `metav1.Time` and `metav1.MicroTime` as their JSON forms spell them:
//! RFC 3339 in UTC, to the second (`2024-01-01T00:00:00Z`) or to the
//! microsecond (`2024-01-01T00:00:00.000000Z`).

/// Seconds from 0001-01-01 to 1970-01-01: Go's zero `time.Time`, which
/// upstream marshals as JSON `null`.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

/// Formats a Unix time; `Ok(None)` for Go's zero time. Years outside
/// 0000–9999 have no RFC 3339 form that upstream could parse back.
pub(crate) fn format(seconds: i64, nanos: i64, micro: bool) -> Result<Option<String>, String> {
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| format!("time {seconds}s is out of range"))?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    if seconds == GO_ZERO_UNIX && nanos == 0 {
        return Ok(None);
    }
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(format!(
            "time {seconds}s since 1970 falls in year {year}, outside 0000-9999"
        ));
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let mut text = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if micro {
        text.push_str(&format!(".{:06}", nanos / 1000));
    }
    text.push('Z');
    Ok(Some(text))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn seconds_and_micros() {
        assert_eq!(
            format(0, 0, false).unwrap().unwrap(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format(1_704_067_200, 0, false).unwrap().unwrap(),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            format(951_782_400, 0, false).unwrap().unwrap(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format(1_704_067_199, 123_456_789, true).unwrap().unwrap(),
            "2023-12-31T23:59:59.123456Z"
        );
        assert_eq!(
            format(-1, 0, false).unwrap().unwrap(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            format(253_402_300_799, 0, false).unwrap().unwrap(),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn go_zero_time_is_null() {
        assert_eq!(format(-62_135_596_800, 0, false).unwrap(), None);
        assert_eq!(format(-62_135_596_800, 0, true).unwrap(), None);
    }

    #[test]
    fn out_of_range_years_are_refused() {
        assert!(format(253_402_300_800, 0, false).is_err());
        assert!(format(i64::MIN, 0, false).is_err());
        assert!(format(i64::MAX, 999_999_999, true).is_err());
    }
}
