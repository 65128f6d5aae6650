//! Amounts of money: an integer number of minor units in one currency.
//!
//! The text form is the decimal amount in the currency's major unit followed
//! by its ISO 4217 code, with no space: `12.50EUR`, `40EUR`, `1250JPY`,
//! `1.250KWD`. The fraction may have at most as many digits as the currency
//! has minor-unit digits ([`minor_digits`]): 2 for most currencies, 0 for
//! those without a minor unit in use (JPY, KRW, ...), 3 for BHD, IQD, JOD,
//! KWD, LYD, OMR and TND. A longer fraction is refused, never rounded.
//!
//! In a token the amount is two terms, the code and the minor units
//! (`amount("EUR", 1250)`), so comparisons are integer comparisons.

use std::fmt;
use std::str::FromStr;

/// Currencies without minor units in use (ISO 4217 exponent 0).
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// Currencies with three minor-unit digits (ISO 4217 exponent 3).
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Currencies with two minor-unit digits (ISO 4217 exponent 2).
const EXPONENT_2: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
    "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "YER", "ZAR",
    "ZMW", "ZWL",
];

/// The number of minor-unit digits of a known currency code, `None` for a
/// code Tessera does not know.
pub fn minor_digits(currency: &str) -> Option<u32> {
    let known = |table: &[&str]| table.contains(&currency);
    if known(EXPONENT_2) {
        Some(2)
    } else if known(EXPONENT_0) {
        Some(0)
    } else if known(EXPONENT_3) {
        Some(3)
    } else {
        None
    }
}

/// Why an amount was refused. Each message is one line and quotes no input
/// beyond a currency code that passed the shape check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not `<digits>[.<digits>]<CUR>`.
    #[error(
        "invalid amount: expected digits, an optional fraction and a currency code, as in 12.50EUR"
    )]
    Malformed,
    /// A currency that is not three uppercase ASCII letters.
    #[error("invalid amount: the currency must be three uppercase letters (ISO 4217), as in EUR")]
    MalformedCurrency,
    /// A well-formed currency code that is not in the table.
    #[error("invalid amount: unknown currency {0}")]
    UnknownCurrency(String),
    /// More fraction digits than the currency has minor units.
    #[error("invalid amount: {currency} has {digits} minor-unit digit(s); a longer fraction is refused, not rounded")]
    TooPrecise {
        /// The currency.
        currency: String,
        /// Its minor-unit digits.
        digits: u32,
    },
    /// A value below zero.
    #[error("invalid amount: the value must not be negative")]
    Negative,
    /// A value whose minor units do not fit in an `i64`.
    #[error("invalid amount: the value is too large")]
    Overflow,
}

/// An amount: a currency and a non-negative number of its minor units
/// (`12.50EUR` is `EUR` and 1250).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    currency: String,
    minor: i64,
}

impl Amount {
    /// An amount of `minor` minor units of `currency`.
    pub fn new(currency: &str, minor: i64) -> Result<Self, AmountError> {
        digits_of(currency)?;
        if minor < 0 {
            return Err(AmountError::Negative);
        }
        Ok(Self {
            currency: currency.to_owned(),
            minor,
        })
    }

    /// Parses the text form, `12.50EUR` (see the module documentation).
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let split = s.len().checked_sub(3).ok_or(AmountError::Malformed)?;
        if !s.is_char_boundary(split) {
            return Err(AmountError::MalformedCurrency);
        }
        let (number, currency) = s.split_at(split);
        let digits = digits_of(currency)?;
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) if !f.is_empty() => (w, f),
            Some(_) => return Err(AmountError::Malformed),
            None => (number, ""),
        };
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(AmountError::Malformed);
        }
        let fraction_len = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
        if fraction_len > digits {
            return Err(AmountError::TooPrecise {
                currency: currency.to_owned(),
                digits,
            });
        }
        let mut minor: i64 = 0;
        let padded = fraction.bytes().chain(std::iter::repeat(b'0'));
        let take = usize::try_from(digits).unwrap_or(0);
        for b in whole.bytes().chain(padded.take(take)) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(AmountError::Overflow)?;
        }
        Ok(Self {
            currency: currency.to_owned(),
            minor,
        })
    }

    /// The ISO 4217 code.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The value in minor units (cents for EUR).
    pub fn minor(&self) -> i64 {
        self.minor
    }
}

/// The currency's minor-unit digits, or why the code is refused.
fn digits_of(currency: &str) -> Result<u32, AmountError> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AmountError::MalformedCurrency);
    }
    minor_digits(currency).ok_or_else(|| AmountError::UnknownCurrency(currency.to_owned()))
}

/// Serialized as its text form (`"12.50EUR"`), read back with [`Amount::parse`].
impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The text form: `12.50EUR`, `1250JPY`, `1.250KWD`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = minor_digits(&self.currency).unwrap_or(0);
        if digits == 0 {
            return write!(f, "{}{}", self.minor, self.currency);
        }
        let scale = 10i64.pow(digits);
        let width = usize::try_from(digits).unwrap_or(0);
        write!(
            f,
            "{}.{:0width$}{}",
            self.minor / scale,
            self.minor % scale,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_currency_minor_units() {
        let a = Amount::parse("12.50EUR").unwrap();
        assert_eq!((a.currency(), a.minor()), ("EUR", 1250));
        assert_eq!(Amount::parse("12.5EUR").unwrap().minor(), 1250);
        assert_eq!(Amount::parse("40EUR").unwrap().minor(), 4000);
        assert_eq!(Amount::parse("1250JPY").unwrap().minor(), 1250);
        assert_eq!(Amount::parse("1.250KWD").unwrap().minor(), 1250);
        assert_eq!(Amount::parse("0EUR").unwrap().minor(), 0);
        assert_eq!(Amount::parse("12.50EUR").unwrap().to_string(), "12.50EUR");
        assert_eq!(Amount::parse("0.05USD").unwrap().to_string(), "0.05USD");
        assert_eq!(Amount::parse("1.005BHD").unwrap().to_string(), "1.005BHD");
    }

    #[test]
    fn refuses_bad_amounts_with_typed_errors() {
        use AmountError as E;
        let cases: &[(&str, AmountError)] = &[
            (
                "12.501EUR",
                E::TooPrecise {
                    currency: "EUR".into(),
                    digits: 2,
                },
            ),
            (
                "12.500EUR",
                E::TooPrecise {
                    currency: "EUR".into(),
                    digits: 2,
                },
            ),
            (
                "1.5JPY",
                E::TooPrecise {
                    currency: "JPY".into(),
                    digits: 0,
                },
            ),
            (
                "1.0001KWD",
                E::TooPrecise {
                    currency: "KWD".into(),
                    digits: 3,
                },
            ),
            ("-1.00EUR", E::Negative),
            ("92233720368547758.08EUR", E::Overflow),
            ("9223372036854775808JPY", E::Overflow),
            ("12.50XYZ", E::UnknownCurrency("XYZ".into())),
            ("12.50eur", E::MalformedCurrency),
            ("12.50€", E::MalformedCurrency),
            ("12.50 EUR", E::Malformed),
            ("EUR", E::Malformed),
            (".50EUR", E::Malformed),
            ("12.EUR", E::Malformed),
            ("1e3EUR", E::Malformed),
            ("+1EUR", E::Malformed),
            ("", E::Malformed),
        ];
        for (text, want) in cases {
            assert_eq!(Amount::parse(text).as_ref(), Err(want), "{text}");
            assert!(!want.to_string().contains('\n'));
        }
        assert_eq!(
            Amount::parse("9223372036854775807JPY").unwrap().minor(),
            i64::MAX
        );
        assert_eq!(Amount::new("EUR", -1), Err(E::Negative));
        assert_eq!(Amount::new("EURO", 1), Err(E::MalformedCurrency));
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(
            minor in 0..=i64::MAX,
            currency in prop::sample::select(vec!["EUR", "JPY", "KWD", "USD", "KRW", "BHD"]),
        ) {
            let a = Amount::new(currency, minor).unwrap();
            prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Amount::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[-+0-9.]{0,25}[A-Za-z€]{0,4}") {
            if let Ok(a) = Amount::parse(&s) {
                prop_assert!(a.minor() >= 0);
                prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
            }
        }
    }
}
