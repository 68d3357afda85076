//! Money: exact amounts, currencies and the operator's rate table. Amounts are integers of
//! thousandths (Plausible keeps revenue as `Decimal64(3)`), so sums are exact in every
//! engine; conversion between currencies happens once per (row, currency) sum, in Rust,
//! with exact integer arithmetic and one rounding.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Decimal places an amount keeps.
pub const AMOUNT_SCALE: u32 = 3;
/// The largest amount one event may carry, in whole units (a billion). ClickHouse keeps
/// sums in 64 bits (9.2 × 10^18 thousandths): about 9.2 million events at this amount in one
/// row before a sum would wrap, so a sum of real purchases never does.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;
/// Decimal places a rate keeps.
const RATE_SCALE: u32 = 12;
/// The largest rate (units of a currency per unit of the base): with rates in 10^-12 and
/// sums below 2^63, a conversion's product stays within i128.
const MAX_RATE_UNITS: i128 = 1_000_000;
/// Most currencies one rate table may hold.
const MAX_RATES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be a three-letter ISO 4217 code such as EUR")]
    Currency,
    #[error("amount must be a decimal number such as 19.99 (at most {MAX_AMOUNT_UNITS} in size)")]
    Amount,
    #[error("rate for {0} must be a positive decimal number no larger than {MAX_RATE_UNITS}")]
    Rate(String),
    #[error("rate table: {0}")]
    Table(String),
}

/// An ISO 4217 code: three ASCII capitals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Three letters, either case (stored in capitals).
    pub fn parse(s: &str) -> Result<Currency, MoneyError> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::Currency);
        }
        Ok(Currency([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// The sign written before amounts in reports, where one is well known.
    fn symbol(&self) -> Option<&'static str> {
        Some(match self.as_str() {
            "USD" => "$",
            "EUR" => "€",
            "GBP" => "£",
            "JPY" => "¥",
            "INR" => "₹",
            "KRW" => "₩",
            "BRL" => "R$",
            "AUD" => "A$",
            "CAD" => "C$",
            _ => return None,
        })
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decimal number read exactly from text and rounded half to even at `scale` decimal
/// places: `[-+]digits[.digits][e[-+]digits]` (JSON numbers and strings alike). None if
/// it is not one or its magnitude reaches `limit` (in units of 10^-scale).
fn parse_scaled(s: &str, scale: u32, limit: i128) -> Option<i128> {
    let s = s.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || !(-40..=40).contains(&exp)
    {
        return None;
    }
    let digits: String = int.chars().chain(frac.chars()).collect();
    let digits = digits.trim_start_matches('0');
    if digits.len() > 60 {
        return None;
    }
    // value = digits × 10^(exp − frac.len()); in units of 10^-scale, the power is:
    let shift = exp - frac.len() as i32 + scale as i32;
    let mut kept: i128 = 0;
    let (keep, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    for b in keep.bytes() {
        kept = kept.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if kept >= limit {
            return None;
        }
    }
    if shift > 0 {
        for _ in 0..shift {
            kept = kept.checked_mul(10)?;
        }
    } else {
        // Digits dropped beyond the last kept place (some may lie further than `digits`
        // reaches, as zeros): round half to even on them.
        let missing = shift.unsigned_abs() as usize - (digits.len() - keep.len());
        let first = if missing > 0 {
            0
        } else {
            dropped.as_bytes().first().map_or(0, |b| b - b'0')
        };
        let rest_nonzero = missing == 0 && dropped.bytes().skip(1).any(|b| b != b'0');
        let rest_nonzero = rest_nonzero || (missing > 0 && dropped.bytes().any(|b| b != b'0'));
        if first > 5 || (first == 5 && (rest_nonzero || kept % 2 == 1)) {
            kept += 1;
        }
    }
    if kept >= limit {
        return None;
    }
    Some(if negative { -kept } else { kept })
}

/// An exact amount of money in thousandths of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Amount(pub i64);

impl Amount {
    /// A decimal, rounded half to even to thousandths, at most [`MAX_AMOUNT_UNITS`] in size.
    pub fn parse(s: &str) -> Result<Amount, MoneyError> {
        let limit = i128::from(MAX_AMOUNT_UNITS) * 1000 + 1;
        parse_scaled(s, AMOUNT_SCALE, limit)
            .and_then(|v| i64::try_from(v).ok())
            .map(Amount)
            .ok_or(MoneyError::Amount)
    }
}

/// Thousandths as a decimal: at least two places, a third when it is not zero.
pub fn decimal(thousandths: i128) -> String {
    let sign = if thousandths < 0 { "-" } else { "" };
    let abs = thousandths.unsigned_abs();
    let (units, frac) = (abs / 1000, abs % 1000);
    if frac % 10 == 0 {
        format!("{sign}{units}.{:02}", frac / 10)
    } else {
        format!("{sign}{units}.{frac:03}")
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&decimal(i128::from(self.0)))
    }
}

/// What a custom event earned: Plausible's `revenue: {amount, currency}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revenue {
    pub amount: Amount,
    pub currency: Currency,
}

/// The operator's exchange rates: units of each currency per unit of a base currency,
/// as rate services publish them (`{"base": "USD", "rates": {"EUR": 0.92}}`). Read from a
/// file at start; footfall makes no network calls for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rates {
    /// Currency → rate in units of 10^-12; the base is 10^12.
    rates: BTreeMap<Currency, i128>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesFile {
    base: String,
    rates: BTreeMap<String, serde_json::Value>,
}

impl Rates {
    /// No conversions: each currency's revenue counts only toward goals in that currency.
    pub fn none() -> Rates {
        Rates::default()
    }

    /// From a rate file's JSON.
    pub fn from_json(text: &str) -> Result<Rates, MoneyError> {
        let file: RatesFile =
            serde_json::from_str(text).map_err(|e| MoneyError::Table(e.to_string()))?;
        if file.rates.len() > MAX_RATES {
            return Err(MoneyError::Table(format!("at most {MAX_RATES} currencies")));
        }
        let one = 10i128.pow(RATE_SCALE);
        let mut rates = BTreeMap::new();
        rates.insert(Currency::parse(&file.base)?, one);
        for (code, v) in &file.rates {
            let c = Currency::parse(code)?;
            let text = match v {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => return Err(MoneyError::Rate(code.clone())),
            };
            let rate = parse_scaled(&text, RATE_SCALE, MAX_RATE_UNITS * one + 1)
                .filter(|r| *r > 0)
                .ok_or_else(|| MoneyError::Rate(code.clone()))?;
            if c == Currency::parse(&file.base)? && rate != one {
                return Err(MoneyError::Table(format!("the base {c} must have rate 1")));
            }
            rates.insert(c, rate);
        }
        Ok(Rates { rates })
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// `thousandths` of `from` in `to`, rounded half to even to thousandths; None when
    /// the table lacks either (an amount in `to` itself always converts).
    pub fn convert(&self, thousandths: i128, from: Currency, to: Currency) -> Option<i128> {
        if from == to {
            return Some(thousandths);
        }
        let (rf, rt) = (*self.rates.get(&from)?, *self.rates.get(&to)?);
        // amount / rf × rt, as one exact fraction.
        let num = thousandths.checked_mul(rt)?;
        Some(div_half_even(num, rf))
    }
}

/// `n / d` rounded half to even (d > 0).
pub fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    // q is the floor; round up when the remainder passes half, or is half and q is odd.
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal if q % 2 != 0 => q + 1,
        _ => q,
    }
}

/// Groups thousands: 1234567 → "1,234,567".
fn grouped(units: u128) -> String {
    let s = units.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A revenue figure as Plausible's API gives one: `{short, long, value, currency}` —
/// `long` the exact amount with grouped thousands, `short` abbreviated (1.2K, 3.4M).
pub fn money_json(thousandths: i128, currency: Currency) -> serde_json::Value {
    let prefix = currency
        .symbol()
        .map_or_else(|| format!("{currency} "), str::to_string);
    let sign = if thousandths < 0 { "-" } else { "" };
    let exact = decimal(thousandths.abs());
    let (units, frac) = exact.split_once('.').unwrap_or((&exact, "00"));
    let long = format!(
        "{sign}{prefix}{}.{frac}",
        grouped(units.parse().unwrap_or(0))
    );
    let value = thousandths as f64 / 1000.0;
    let abs = value.abs();
    let short = if abs >= 1e9 {
        format!("{sign}{prefix}{:.1}B", abs / 1e9)
    } else if abs >= 1e6 {
        format!("{sign}{prefix}{:.1}M", abs / 1e6)
    } else if abs >= 1e3 {
        format!("{sign}{prefix}{:.1}K", abs / 1e3)
    } else {
        format!("{sign}{prefix}{abs:.2}")
    };
    serde_json::json!({"short": short, "long": long, "value": value, "currency": currency})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn amounts_parse_exactly() {
        let a = |s: &str| Amount::parse(s).map(|a| a.0);
        assert_eq!(a("19.99"), Ok(19_990));
        assert_eq!(a("-0.5"), Ok(-500));
        assert_eq!(a("1322.22"), Ok(1_322_220));
        assert_eq!(a("1e3"), Ok(1_000_000));
        assert_eq!(a("1.5e-2"), Ok(15));
        assert_eq!(a("0.0005"), Ok(0), "half to even: 0");
        assert_eq!(a("0.0015"), Ok(2), "half to even: 2");
        assert_eq!(a("0.00150001"), Ok(2));
        assert_eq!(a("0.0025"), Ok(2));
        assert_eq!(a("0.00251"), Ok(3));
        assert_eq!(a("1e-9"), Ok(0));
        assert_eq!(a("000012.300"), Ok(12_300));
        assert_eq!(a("1000000000"), Ok(1_000_000_000_000));
        for bad in [
            "",
            "-",
            ".",
            "1..2",
            "1.2.3",
            "abc",
            "1e",
            "1e999",
            "NaN",
            "inf",
            "0x10",
            "1,5",
            "1000000000.001",
            "1e10",
            " ",
        ] {
            assert_eq!(a(bad), Err(MoneyError::Amount), "{bad:?}");
        }
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(Currency::parse("usd").unwrap().as_str(), "USD");
        for bad in ["", "US", "USDT", "U$D", "ÜSD", "12A"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_convert_through_the_base() {
        let r =
            Rates::from_json(r#"{"base": "USD", "rates": {"EUR": 0.8, "JPY": "150"}}"#).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        // 10 EUR = 12.5 USD; 10 EUR = 1875 JPY.
        assert_eq!(r.convert(10_000, eur(), usd), Some(12_500));
        assert_eq!(r.convert(10_000, eur(), jpy), Some(1_875_000));
        // 1 JPY in USD: 0.00666…, to thousandths 0.007.
        assert_eq!(r.convert(1_000, jpy, usd), Some(7));
        let gbp = Currency::parse("GBP").unwrap();
        assert_eq!(r.convert(1_000, gbp, usd), None);
        assert_eq!(r.convert(1_000, gbp, gbp), Some(1_000));
        assert_eq!(Rates::none().convert(5, eur(), eur()), Some(5));
        for bad in [
            r#"{"base": "USD", "rates": {"EUR": 0}}"#,
            r#"{"base": "USD", "rates": {"EUR": -1}}"#,
            r#"{"base": "USD", "rates": {"EUR": "x"}}"#,
            r#"{"base": "USD", "rates": {"EURO": 1}}"#,
            r#"{"base": "USD", "rates": {"USD": 2}}"#,
            r#"{"base": "USD", "rates": {"EUR": 1e30}}"#,
            r#"{"base": "USD", "rates": {"EUR": 1000001}}"#,
            r#"{"base": "US", "rates": {}}"#,
            r#"{"rates": {}}"#,
            r#"{"base": "USD", "rates": {}, "extra": 1}"#,
            "[]",
        ] {
            assert!(Rates::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn figures_read_as_plausible_writes_them() {
        let v = money_json(1_234_567_890, eur());
        assert_eq!(v["long"], "€1,234,567.89");
        assert_eq!(v["short"], "€1.2M");
        assert_eq!(v["value"], 1_234_567.89);
        assert_eq!(v["currency"], "EUR");
        let chf = Currency::parse("chf").unwrap();
        assert_eq!(money_json(-1_500, chf)["long"], "-CHF 1.50");
        assert_eq!(money_json(12_345, chf)["long"], "CHF 12.345");
        assert_eq!(money_json(999_000, chf)["short"], "CHF 999.00");
    }

    proptest! {
        /// Any amount written as a decimal with up to three places reads back as itself,
        /// and one with a fourth place rounds as an independent rule says.
        #[test]
        fn decimals_round_trip(x in -1_000_000_000_000i64..=1_000_000_000_000, y in -10_000_000_000_000i128..=10_000_000_000_000) {
            prop_assert_eq!(Amount::parse(&decimal(i128::from(x))), Ok(Amount(x)));
            let sign = if y < 0 { "-" } else { "" };
            let text = format!("{sign}{}.{:04}", y.abs() / 10_000, y.abs() % 10_000);
            prop_assert_eq!(Amount::parse(&text).map(|a| i128::from(a.0)), Ok(div_half_even(y, 10)), "{}", text);
        }

        /// Conversion there and back stays within rounding of where it began, and half to
        /// even agrees with rounding the exact fraction.
        #[test]
        fn conversion_rounds_once(amount in -1_000_000_000i128..1_000_000_000, n in 1i128..100_000, d in 1i128..100_000) {
            let exact_num = amount * n;
            let got = div_half_even(exact_num, d);
            // |got − amount·n/d| ≤ 1/2.
            prop_assert!((2 * (got * d - exact_num)).abs() <= d);
        }
    }
}
