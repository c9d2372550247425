//! Durations written as strings: `500ms`, `90s`, `30m`, `8h`, `1d`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s, m, h or d, e.g. \"30m\")"))?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    }
    .ok_or_else(|| format!("{text:?} is too large"))
}

/// The shortest exact spelling `parse` reads back: `30m`, `8h`, `1500ms`.
pub fn format(duration: Duration) -> String {
    if duration.subsec_nanos() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    let (n, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(size, _)| secs != 0 && secs.is_multiple_of(*size))
        .map_or((secs, "s"), |(size, unit)| (secs / size, unit));
    format!("{n}{unit}")
}

/// serde `deserialize_with` for duration strings; a bare number gets a hint about units.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// serde `serialize_with` for duration strings.
pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*duration))
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"90s\", \"30m\" or \"8h\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{n} has no unit: write a string such as \"{n}s\" or \"{n}m\""
        )))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{n} has no unit: write a string such as \"{n}s\" or \"{n}m\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn rejects_missing_or_unknown_units_and_overflow() {
        assert_eq!(
            parse("30"),
            Err("\"30\" has no unit (use ms, s, m, h or d, e.g. \"30m\")".to_owned())
        );
        assert!(parse("m").is_err());
        assert!(parse("3w").is_err());
        assert!(parse("99999999999999999999s").is_err());
    }

    #[test]
    fn formats_back_to_the_shortest_exact_unit() {
        for text in ["0s", "1500ms", "90s", "30m", "8h", "2d", "25h"] {
            let parsed = parse(text).expect("parses");
            assert_eq!(format(parsed), text);
        }
    }
}
