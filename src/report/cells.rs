//! The cells of the report's tables: numbers and names as `results.md` and the CSV files
//! write them. A missing or non-finite number is an en dash in Markdown and an empty cell in
//! CSV.
use crate::stats::finite;

/// A value for the CSV, empty when missing.
pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A number for the CSV: empty when missing or not finite.
pub(super) fn optf(v: Option<f64>) -> String {
    v.and_then(finite)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// A number with `decimals` decimals, `–` when missing or not finite.
pub(super) fn fmt_f(v: Option<f64>, decimals: usize) -> String {
    v.and_then(finite)
        .map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "–".into())
}

/// A count in millions with two decimals.
pub(super) fn fmt_millions(n: Option<i64>) -> String {
    n.map(|n| format!("{:.2}", n as f64 / 1e6))
        .unwrap_or_else(|| "–".into())
}

/// Parameters in millions, with more digits for small networks (a CIFAR ResNet's 0.27 M).
pub(super) fn fmt_params(n: Option<i64>) -> String {
    match n {
        Some(n) if n.abs() < 10_000_000 => format!("{:.3}", n as f64 / 1e6),
        n => fmt_millions(n),
    }
}

/// A count with a unit prefix: 950, 12.3 k, 2.09 M, 1.10 G.
pub(super) fn fmt_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Seconds as `12.3 s`, `4m 05s` or `2h 03m`.
pub(super) fn fmt_duration(s: Option<f64>) -> String {
    let Some(s) = s.and_then(finite) else {
        return "–".into();
    };
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let t = s.round() as u64;
        format!("{}m {:02}s", t / 60, t % 60)
    } else {
        let t = (s / 60.0).round() as u64;
        format!("{}h {:02}m", t / 60, t % 60)
    }
}

/// A value to 9 decimals, trailing zeros dropped (79.00000000000001 -> 79).
pub(super) fn short(x: f64) -> String {
    let s = format!("{x:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Text for a Markdown table cell (a `|` would end the cell).
pub(super) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Text for a CSV cell, quoted (RFC 4180) when it holds a separator, quote or line break.
pub(super) fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_numbers_and_text() {
        assert_eq!(fmt_duration(Some(5.25)), "5.2 s");
        assert_eq!(fmt_duration(Some(245.0)), "4m 05s");
        assert_eq!(fmt_duration(Some(7380.0)), "2h 03m");
        assert_eq!(fmt_duration(Some(f64::NAN)), "–");
        assert_eq!(fmt_count(2_088_628.0), "2.09 M");
        assert_eq!(fmt_params(Some(272_474)), "0.272");
        assert_eq!(fmt_params(Some(24_000_000)), "24.00");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(md_escape("a|b"), "a\\|b");
        assert_eq!(optf(Some(f64::NAN)), "");
        assert_eq!(optf(Some(1.5)), "1.5");
        assert_eq!(short(79.00000000000001), "79");
        assert_eq!(fmt_f(None, 2), "–");
    }
}
