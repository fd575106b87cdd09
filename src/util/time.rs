//! Timestamps: milliseconds since the Unix epoch in storage, RFC 3339 on the
//! wire. Written out by hand because one date format does not justify a
//! date-time crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with millisecond
/// precision and a `Z` suffix, e.g. `2026-11-24T21:44:09.123Z`.
#[cfg(test)]
pub fn rfc3339_millis(millis: i64) -> String {
    let mut out = [0u8; 24];
    write_rfc3339_millis(millis, &mut out);
    // Only ASCII digits and punctuation were written.
    String::from_utf8_lossy(&out).into_owned()
}

/// Serializes milliseconds since the epoch as an RFC 3339 string, for
/// `#[serde(serialize_with = "crate::util::time::serialize_rfc3339")]`.
pub fn serialize_rfc3339<S: serde::Serializer>(
    millis: &i64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 24];
    write_rfc3339_millis(*millis, &mut text);
    serializer.serialize_str(std::str::from_utf8(&text).expect("ASCII timestamp"))
}

/// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into `out` without allocating: it runs
/// twice per article in every response and once per log line, where
/// `format!` with padding cost thousands of instructions. Years outside
/// 0..=9999 are clamped (they cannot come from the system clock).
pub fn write_rfc3339_millis(millis: i64, out: &mut [u8; 24]) {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let year = year.clamp(0, 9999) as u32;
    *out = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], month);
    put_digits(&mut out[8..10], day);
    put_digits(&mut out[11..13], (secs_of_day / 3600) as u32);
    put_digits(&mut out[14..16], (secs_of_day / 60 % 60) as u32);
    put_digits(&mut out[17..19], (secs_of_day % 60) as u32);
    put_digits(&mut out[20..23], millis.rem_euclid(1000) as u32);
}

/// Writes `value` as decimal digits, zero-padded to fill `out`.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Formats milliseconds since the epoch as an HTTP date (RFC 9110
/// IMF-fixdate), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(millis: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    format!(
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        MONTHS[month as usize - 1],
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// Reads an HTTP date in the preferred format (RFC 9110 IMF-fixdate, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`) as milliseconds since the epoch. The two
/// obsolete formats are not read: senders have been required to use this
/// one since 1999, and a caller that cannot read a date only loses a hint.
pub fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_weekday, rest) = text.trim().split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = parts.as_slice() else {
        return None;
    };
    let number = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let day = number(day, 2)?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year = number(year, 4)?;
    let mut hms = clock.split(':').map(|s| number(s, 2));
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400) + h * 3600 + m * 60 + s) * 1000)
}

/// Converts a proleptic Gregorian date to days since 1970-01-01. Howard
/// Hinnant's `days_from_civil` algorithm, the inverse of `civil_from_days`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month,
/// day). Howard Hinnant's `civil_from_days` algorithm.
/// Reads an RFC 3339 date-time (`2026-11-24T21:44:09.123Z`, any number of
/// fraction digits, `Z` or an offset such as `+01:00`) as milliseconds
/// since the epoch; digits past the millisecond are dropped. `None` if it is
/// not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    let punctuated = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !punctuated {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let days = days_from_civil(year, month, day);
    // A date that does not exist (month 13, February 30) does not come back.
    let real = civil_from_days(days) == (year, month as u32, day as u32);
    if !real || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        for (i, d) in b[at + 1..at + 1 + digits.min(3)].iter().enumerate() {
            millis += i64::from(d - b'0') * [100, 10, 1][i];
        }
        at += 1 + digits;
    }
    let offset_minutes = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_rfc_3339_offsets() {
        for millis in [
            0,
            1,
            951_782_400_000,
            1_795_556_649_123,
            4_107_542_400_000,
            -86_400_001,
        ] {
            assert_eq!(
                parse_rfc3339(&rfc3339_millis(millis)),
                Some(millis),
                "{millis}"
            );
        }
        assert_eq!(
            parse_rfc3339("2026-11-24T22:44:09.1234+01:00"),
            Some(1_795_556_649_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-24t21:44:09z"),
            Some(1_795_556_649_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-24T20:44:09-01:00"),
            Some(1_795_556_649_000)
        );
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24T21:44:09",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T21:44:09.Z",
            "2026-11-24T21:44:09+0100",
            "2026-11-24T21:44:09Z ",
            "２026-11-24T21:44:09Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_the_epoch() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn formats_a_known_instant() {
        // 2026-11-24T21:44:09.123Z
        assert_eq!(
            rfc3339_millis(1_795_556_649_123),
            "2026-11-24T21:44:09.123Z"
        );
    }

    #[test]
    fn handles_leap_days_and_century_rules() {
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            http_date(1_795_556_649_123),
            "Tue, 24 Nov 2026 21:44:09 GMT"
        );
    }

    #[test]
    fn parses_http_dates_back() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        let now = 1_795_556_649_000;
        assert_eq!(parse_http_date(&http_date(now)), Some(now));
        assert_eq!(
            parse_http_date(&http_date(951_782_400_000)),
            Some(951_782_400_000)
        );
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_millis() > 1_577_836_800_000);
    }
}
