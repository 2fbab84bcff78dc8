//! String `format`s of CRD schemas, as the API server checks them (the formats
//! apiextensions-apiserver supports; any other format is ignored, as there).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether `text` is valid for `format` (`date-time` and `datetime` are the same).
pub fn valid(format: &str, text: &str) -> bool {
    match format.replace('-', "").as_str() {
        "datetime" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => date(text),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok()
        }
        "ipv4" => text.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(text),
        "mac" => mac(text),
        "uuid" => uuid(text, None),
        "uuid3" => uuid(text, Some('3')),
        "uuid4" => uuid(text, Some('4')),
        "uuid5" => uuid(text, Some('5')),
        "hostname" => hostname(text),
        "email" => email(text),
        "uri" => uri(text),
        "duration" => duration(text),
        "hexcolor" => {
            let h = text.strip_prefix('#').unwrap_or(text);
            matches!(h.len(), 3 | 6) && h.chars().all(|c| c.is_ascii_hexdigit())
        }
        "bsonobjectid" => text.len() == 24 && text.chars().all(|c| c.is_ascii_hexdigit()),
        "k8sshortname" => crate::api::admission::names::dns1123_label(text).is_empty(),
        "k8slongname" => {
            !text.is_empty()
                && text.split('.').all(|s| {
                    !s.is_empty()
                        && !s.starts_with('-')
                        && !s.ends_with('-')
                        && s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        }
        _ => true,
    }
}

fn date(text: &str) -> bool {
    text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok()
}

fn cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    (ip.parse::<Ipv4Addr>().is_ok() && bits <= 32)
        || (ip.parse::<Ipv6Addr>().is_ok() && bits <= 128)
}

fn mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    matches!(parts.len(), 6 | 8 | 20)
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn uuid(text: &str, version: Option<char>) -> bool {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    match version {
        None => true,
        Some(v) => {
            let b = hex.as_bytes();
            b[12] as char == v
                && (v == '3' || matches!(b[16], b'8' | b'9' | b'a' | b'b' | b'A' | b'B'))
        }
    }
}

fn hostname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn email(text: &str) -> bool {
    let addr = match (text.find('<'), text.rfind('>')) {
        (Some(a), Some(b)) if a < b => &text[a + 1..b],
        _ => text,
    };
    match addr.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !addr.contains(' '),
        None => false,
    }
}

fn uri(text: &str) -> bool {
    // Go's url.ParseRequestURI: an absolute URI or an absolute path.
    if text.starts_with('/') {
        return !text.contains(' ');
    }
    match text.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !text.contains(' ')
        }
        None => false,
    }
}

/// Go's `time.ParseDuration` syntax (`1h30m`, `-1.5s`, `300ms`) or a Scala-style `22 ns`.
fn duration(text: &str) -> bool {
    let t = text.trim();
    if let Some((n, unit)) = t.split_once(' ') {
        return n.parse::<f64>().is_ok()
            && matches!(
                unit.trim().trim_end_matches('s'),
                "n" | "u"
                    | "µ"
                    | "m"
                    | "h"
                    | "d"
                    | "w"
                    | "nanosecond"
                    | "microsecond"
                    | "millisecond"
                    | "second"
                    | "minute"
                    | "hour"
                    | "day"
                    | "week"
            );
    }
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    if t == "0" {
        return true;
    }
    let mut rest = t;
    let mut any = false;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 || rest[..num_len].parse::<f64>().is_err() {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn formats() {
        assert!(valid("date-time", "2024-05-01T10:00:00Z"));
        assert!(!valid("date-time", "yesterday"));
        assert!(valid("date", "2024-05-01"));
        assert!(!valid("date", "2024-5-1"));
        assert!(valid("ipv4", "10.0.0.1") && !valid("ipv4", "10.0.0"));
        assert!(valid("cidr", "10.0.0.0/8") && !valid("cidr", "10.0.0.0"));
        assert!(valid("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(
            valid("duration", "1h30m") && valid("duration", "300ms") && !valid("duration", "soon")
        );
        assert!(valid("email", "a@b.c") && !valid("email", "nobody"));
        assert!(valid("uri", "https://example.com/x") && !valid("uri", "example"));
        assert!(valid("byte", "aGVsbG8=") && !valid("byte", "***"));
        assert!(valid("whatever-else", "anything"));
    }
}
