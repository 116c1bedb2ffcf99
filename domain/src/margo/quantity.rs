//! Binary quantities as Margo writes them (`1024Mi`, `10Gi`, and leniently `"59 Gi"`).

/// Parses a quantity into bytes. Accepts an optional space before the unit and plain byte counts.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim() {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        "Pi" => 50,
        "Ei" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Writes a byte count in the strict Margo form (`512Mi`), choosing the largest exact unit.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{}Ki", bytes.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strict_and_spaced_forms() {
        assert_eq!(parse_bytes("1024Mi"), Some(1 << 30));
        assert_eq!(parse_bytes("59 Gi"), Some(59 << 30));
        assert_eq!(parse_bytes("10Gb"), None);
        assert_eq!(format_bytes(512 << 20), "512Mi");
    }
}
