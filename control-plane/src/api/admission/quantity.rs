//! `resource.Quantity` parsing (syntax check, sign, comparison, sums).

use std::cmp::Ordering;

/// Kubernetes' message for a malformed quantity.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Kubernetes' message for a bad suffix.
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// A parsed quantity held as nano-units (rounded up like Kubernetes does
/// for precision below 1n), saturating on overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity {
    nanos: i128,
}

fn pow10(e: u32) -> i128 {
    10i128.checked_pow(e).unwrap_or(i128::MAX)
}

impl Quantity {
    pub fn zero() -> Self {
        Quantity { nanos: 0 }
    }

    /// `resource.ParseQuantity`
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(FORMAT_ERROR);
        }
        let mut i = 0;
        let mut neg = false;
        if b[0] == b'+' || b[0] == b'-' {
            neg = b[0] == b'-';
            i = 1;
        }
        let mut mant: i128 = 0;
        let mut frac_digits: i32 = 0;
        let mut digits = 0;
        let mut seen_dot = false;
        let mut overflow = false;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                digits += 1;
                match mant
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(i128::from(c - b'0')))
                {
                    Some(m) => mant = m,
                    None => {
                        overflow = true;
                        if seen_dot {
                            // ignore excess fractional precision
                            i += 1;
                            continue;
                        }
                    }
                }
                if seen_dot && !overflow {
                    frac_digits += 1;
                }
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if digits == 0 {
            return Err(FORMAT_ERROR);
        }
        let suffix = &s[i..];
        let (mut exp10, mut exp2): (i32, u32) = (0, 0);
        match suffix {
            "" => {}
            "n" => exp10 = -9,
            "u" => exp10 = -6,
            "m" => exp10 = -3,
            "k" => exp10 = 3,
            "M" => exp10 = 6,
            "G" => exp10 = 9,
            "T" => exp10 = 12,
            "P" => exp10 = 15,
            "E" => exp10 = 18,
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            _ => {
                let sb = suffix.as_bytes();
                if sb[0] == b'e' || sb[0] == b'E' {
                    let rest = &suffix[1..];
                    let digits_part = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                    if digits_part.is_empty() || !digits_part.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(SUFFIX_ERROR);
                    }
                    exp10 = rest.parse::<i32>().map_err(|_| SUFFIX_ERROR)?;
                } else if suffix
                    .bytes()
                    .all(|c| b"eEinumkKMGTP+-0123456789".contains(&c))
                {
                    return Err(SUFFIX_ERROR);
                } else {
                    return Err(FORMAT_ERROR);
                }
            }
        }
        if overflow && !seen_dot {
            return Ok(Quantity {
                nanos: if neg { i128::MIN } else { i128::MAX },
            });
        }
        let v = if exp2 == 0 {
            mant
        } else if mant.leading_zeros() > exp2 + 1 {
            mant << exp2
        } else {
            return Ok(Quantity {
                nanos: if neg { i128::MIN } else { i128::MAX },
            });
        };
        let scale = exp10.saturating_sub(frac_digits).saturating_add(9);
        let nanos = if scale >= 0 {
            v.checked_mul(pow10(scale.unsigned_abs()))
                .unwrap_or(i128::MAX)
        } else {
            let d = pow10(scale.unsigned_abs());
            if d == i128::MAX {
                i128::from(v != 0)
            } else {
                // round up (away from zero) like Kubernetes
                v / d + i128::from(v % d != 0)
            }
        };
        Ok(Quantity {
            nanos: if neg { -nanos } else { nanos },
        })
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Value in milli-units, rounded up.
    pub fn millis(&self) -> i128 {
        let m = self.nanos / 1_000_000;
        if self.nanos % 1_000_000 > 0 {
            m + 1
        } else {
            m
        }
    }

    pub fn saturating_add(self, other: Self) -> Self {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }

    pub fn cmp_to(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Renders a JSON number the way a quantity string would be written
/// (`1` → `"1"`, `0.5` → `"0.5"`), for accepting `cpu: 1` in manifests.
pub fn number_to_quantity_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("{}", f as i64)
        }
        Some(f) if f.is_finite() => format!("{f}"),
        _ => n.to_string(),
    }
}
