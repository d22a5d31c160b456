//! Times on the admin pages: the database's microseconds since the epoch
//! shown as UTC dates, and the date fields of the filter form read back.
//! Everything is UTC, said so on the page, so that every viewer reads the
//! same time whatever their browser's zone.

use std::time::SystemTime;

use rustyray_queue::Micros;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-05-01 12:34:56 UTC`.
pub(crate) fn format(micros: Micros) -> String {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The value a `datetime-local` field shows for `micros`: `2026-05-01T12:34`.
pub(crate) fn input_value(micros: Micros) -> String {
    let text = format(micros);
    format!("{}T{}", &text[..10], &text[11..16])
}

/// Now, in microseconds since the epoch.
pub(crate) fn now() -> Micros {
    rustyray_queue::to_micros(SystemTime::now())
}

/// How long between two times, readably: `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`.
pub(crate) fn duration(micros: i64) -> String {
    let micros = micros.max(0);
    if micros < MICROS_PER_SECOND {
        return format!("{} ms", micros / 1000);
    }
    let seconds = micros / MICROS_PER_SECOND;
    if seconds < 60 {
        return format!("{:.1} s", micros as f64 / 1e6);
    }
    if seconds < 3600 {
        return format!("{} min {} s", seconds / 60, seconds % 60);
    }
    if seconds < SECONDS_PER_DAY {
        return format!("{} h {} min", seconds / 3600, seconds % 3600 / 60);
    }
    format!("{} d {} h", seconds / SECONDS_PER_DAY, seconds % SECONDS_PER_DAY / 3600)
}

/// `time` relative to `now`: `5 s ago`.
pub(crate) fn ago(time: Micros, now: Micros) -> String {
    if time > now { format!("in {}", duration(time - now)) } else { format!("{} ago", duration(now - time)) }
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (a space
/// may stand for the `T`) as a UTC time.
pub(crate) fn parse(text: &str) -> Result<Micros, String> {
    let text = text.trim();
    let wrong = || {
        format!("`{}` is not a date and time like 2026-05-01T14:30 (UTC)", text.chars().take(40).collect::<String>())
    };
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let number = |part: &str, digits: usize| -> Result<i64, String> {
        if part.len() == digits && part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| wrong())
        } else {
            Err(wrong())
        }
    };
    let mut fields = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(wrong());
    };
    let (year, month, day) = (number(year, 4)?, number(month, 2)?, number(day, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month as u32) {
        return Err(wrong());
    }
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if let Some(time) = time {
        let parts: Vec<&str> = time.split(':').collect();
        match parts.as_slice() {
            [h, m] => (hour, minute) = (number(h, 2)?, number(m, 2)?),
            [h, m, s] => (hour, minute, second) = (number(h, 2)?, number(m, 2)?, number(s, 2)?),
            _ => return Err(wrong()),
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(wrong());
        }
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
    seconds.checked_mul(MICROS_PER_SECOND).ok_or_else(wrong)
}

fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format(951_782_400 * MICROS_PER_SECOND), "2000-02-29 00:00:00 UTC");
        assert_eq!(parse("2000-02-29").unwrap(), 951_782_400 * MICROS_PER_SECOND);
        assert_eq!(parse("2026-05-01T14:30").unwrap(), parse("2026-05-01 14:30:00").unwrap());
        let now = super::now() / MICROS_PER_SECOND * MICROS_PER_SECOND;
        let shown = format(now);
        assert_eq!(parse(&shown.replace(" UTC", "")).unwrap(), now);
        assert_eq!(parse(&input_value(now)).unwrap(), now / 60_000_000 * 60_000_000);
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in ["", "yesterday", "2026-13-01", "2026-02-30", "2026-05-01T25:00", "2026-5-1", "2026-05-01T10", "<b>"]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850_000), "850 ms");
        assert_eq!(duration(12_300_000), "12.3 s");
        assert_eq!(duration(245 * MICROS_PER_SECOND), "4 min 5 s");
        assert_eq!(ago(0, 5 * MICROS_PER_SECOND), "5.0 s ago");
    }
}
