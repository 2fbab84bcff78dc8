use skiff_control_plane::api::admission::quantity::{Quantity, FORMAT_ERROR, SUFFIX_ERROR};

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parse_and_compare() {
    assert_eq!(q("100m"), q("0.1"));
    assert_eq!(q("1"), q("1000m"));
    assert_eq!(q("1Ki"), q("1024"));
    assert_eq!(q("1k"), q("1e3"));
    assert_eq!(q("1.5Gi").nanos(), 1_610_612_736 * 1_000_000_000);
    assert!(q("2") > q("1999m"));
    assert!(q("-1").is_negative());
    assert_eq!(q("1n").nanos(), 1);
    assert_eq!(q(".5").millis(), 500);
    assert_eq!(q("5.").millis(), 5000);
    assert_eq!(q("+3").millis(), 3000);
    assert_eq!(q("1E-3"), q("1m"));
    assert_eq!(q("0.0000000001").nanos(), 1); // rounds up
    assert!(q("1Ei") < q("2Ei"));
}

#[test]
fn parse_errors() {
    for (s, e) in [
        ("", FORMAT_ERROR),
        ("abc", FORMAT_ERROR),
        ("1x", FORMAT_ERROR),
        ("1 Gi", FORMAT_ERROR),
        ("1Mii", SUFFIX_ERROR),
        ("1ee", SUFFIX_ERROR),
        ("1e", SUFFIX_ERROR),
        (".", FORMAT_ERROR),
        ("1..2", FORMAT_ERROR),
    ] {
        assert_eq!(Quantity::parse(s), Err(e), "{s:?}");
    }
}
