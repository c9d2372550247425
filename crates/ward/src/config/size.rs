//! Sizes in bytes: a TOML integer (`1048576`) or a string with a unit (`"512KiB"`, `"10MiB"`,
//! `"1GiB"`, `"64kB"`).
//!
//! Binary units (`KiB`, `MiB`, `GiB`) are powers of 1024, decimal ones (`kB`, `MB`, `GB`) powers
//! of 1000, and `B` or no unit means bytes. Units are matched exactly: `KB` is 1000 to some
//! tools and 1024 to others, and `mb` reads as megabits, so those spellings are refused with a
//! hint rather than guessed. Only whole numbers are accepted (`"1536MiB"`, not `"1.5GiB"`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Every accepted unit, largest first (the order [`format`] tries them in).
const UNITS: &[(&str, u64)] = &[
    ("GiB", GIB),
    ("GB", 1_000_000_000),
    ("MiB", MIB),
    ("MB", 1_000_000),
    ("KiB", KIB),
    ("kB", 1000),
    ("B", 1),
];

const UNIT_LIST: &str = "B, KiB, MiB, GiB, kB, MB or GB";

/// Parses `<digits>[ ][unit]`; see the module doc for the units.
pub fn parse(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} does not start with a number of bytes (e.g. \"10MiB\" or 1048576)"
        ));
    }
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{text:?}: use a whole number with a smaller unit (e.g. \"1536MiB\", not \"1.5GiB\")"
        ));
    }
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, size)| *size)
            .ok_or_else(|| unknown_unit(text, unit))?
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn unknown_unit(text: &str, unit: &str) -> String {
    let near = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|(name, _)| *name);
    match near {
        Some(_) if unit.eq_ignore_ascii_case("kb") => {
            format!("{text:?}: {unit:?} is ambiguous; write KiB (1024 bytes) or kB (1000 bytes)")
        }
        Some(name) => format!(
            "{text:?}: unknown unit {unit:?}; units are case-sensitive, did you mean {name:?}?"
        ),
        None => format!("{text:?}: unknown unit {unit:?} (use {UNIT_LIST})"),
    }
}

/// The shortest exact spelling `parse` reads back, with the largest unit that divides it:
/// `10MiB`, `2GB`, `1kB` for 1000 bytes, `1023B`.
pub fn format(bytes: u64) -> String {
    let (n, unit) = UNITS
        .iter()
        .find(|(_, size)| bytes != 0 && bytes.is_multiple_of(*size))
        .map_or((bytes, "B"), |(unit, size)| (bytes / size, unit));
    format!("{n}{unit}")
}

/// serde `deserialize_with` for a size: an integer (bytes) or a string with a unit.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

/// serde `serialize_with` for a size: the string [`format`] gives.
pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*bytes))
}

/// The same for an optional size (`#[serde(default, with = "…::size::option")]`): an absent key
/// stays `None`.
pub mod option {
    use super::*;

    /// serde `deserialize_with`: a present key is a size as for [`super::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(SizeVisitor).map(Some)
    }

    /// serde `serialize_with`: `None` serializes as none (pair with `skip_serializing_if`).
    pub fn serialize<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&format(*bytes)),
            None => s.serialize_none(),
        }
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes, or a string such as \"512KiB\", \"10MiB\" or \"1GiB\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse(text).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("{n} is negative; a size is 0 or more")))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[test]
    fn parses_bytes_and_every_unit() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1_048_576),
            ("100B", 100),
            ("512KiB", 512 * 1024),
            ("10MiB", 10 * 1024 * 1024),
            ("1GiB", 1 << 30),
            ("64kB", 64_000),
            ("5MB", 5_000_000),
            ("2GB", 2_000_000_000),
            (" 10 MiB ", 10 * 1024 * 1024),
        ] {
            assert_eq!(parse(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn refuses_ambiguous_misspelled_and_unknown_units() {
        assert_eq!(
            parse("64KB"),
            Err("\"64KB\": \"KB\" is ambiguous; write KiB (1024 bytes) or kB (1000 bytes)".into())
        );
        assert_eq!(
            parse("10mib"),
            Err(
                "\"10mib\": unknown unit \"mib\"; units are case-sensitive, did you mean \"MiB\"?"
                    .into()
            )
        );
        assert_eq!(
            parse("1TiB"),
            Err("\"1TiB\": unknown unit \"TiB\" (use B, KiB, MiB, GiB, kB, MB or GB)".into())
        );
        assert!(parse("10 M iB").is_err());
    }

    #[test]
    fn refuses_missing_numbers_fractions_negatives_and_overflow() {
        assert!(parse("").is_err());
        assert!(parse("MiB").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1.5GiB").is_err_and(|e| e.contains("use a whole number")),);
        assert_eq!(
            parse("17179869184GiB"),
            Err("\"17179869184GiB\" is too large".into())
        );
        assert!(parse("99999999999999999999").is_err());
    }

    #[test]
    fn formats_back_to_the_largest_exact_unit() {
        for text in [
            "0B", "1023B", "1kB", "64KiB", "10MiB", "5MB", "1GiB", "2GB", "1000MiB",
        ] {
            let parsed = parse(text).expect("parses");
            assert_eq!(format(parsed), text);
        }
        assert_eq!(format(1_048_576), "1MiB");
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Sample {
        #[serde(with = "crate::config::size")]
        limit: u64,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::config::size::option"
        )]
        route_limit: Option<u64>,
    }

    #[test]
    fn deserializes_integers_and_strings_and_serializes_strings() {
        let sample: Sample =
            toml::from_str("limit = 2048\nroute_limit = \"1GiB\"").expect("parses");
        assert_eq!(
            sample,
            Sample {
                limit: 2048,
                route_limit: Some(1 << 30)
            }
        );
        assert_eq!(
            toml::to_string(&sample).expect("serializes"),
            "limit = \"2KiB\"\nroute_limit = \"1GiB\"\n"
        );
        let sample: Sample = toml::from_str("limit = \"1MB\"").expect("parses");
        assert_eq!(sample.route_limit, None);
        assert_eq!(
            toml::to_string(&sample).expect("serializes"),
            "limit = \"1MB\"\n"
        );
    }

    #[test]
    fn a_negative_integer_or_another_type_is_an_error() {
        let error = toml::from_str::<Sample>("limit = -1").expect_err("negative");
        assert!(error.message().contains("-1 is negative"), "{error}");
        let error = toml::from_str::<Sample>("limit = true").expect_err("boolean");
        assert!(error.message().contains("a size in bytes"), "{error}");
    }
}
