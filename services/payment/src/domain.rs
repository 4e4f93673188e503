//! What a charge is, checked once at the edge: parse, don't validate.

use contracts::payment::v1 as pb;

/// A checked `ProcessPayment` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The idempotency key.
    pub order_id: OrderId,
    /// The amount, in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: Currency,
    /// How the customer pays.
    pub method: pb::PaymentMethod,
}

/// An order id: 1..=128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

/// An ISO 4217 alphabetic code of a currency in circulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(&'static str);

/// One refused field: which, and why (becomes a `google.rpc.BadRequest` field violation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, as protobuf names it (`amount.currency_code`).
    pub field: &'static str,
    /// What is wrong, for a person.
    pub description: String,
}

/// The largest amount one charge may carry: a guard against unit mistakes, not a business rule.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// ISO 4217 currencies in circulation (funds and precious metals left out).
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

// === impl OrderId ===

impl OrderId {
    /// Checks `value` as an order id.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if value.len() > 128 {
            return Err(format!(
                "must be at most 128 characters, got {}",
                value.len()
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!(
                "may hold only letters, digits and . _ : -, found {bad:?}"
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// === impl Currency ===

impl Currency {
    /// Checks `code` against ISO 4217 (upper case, as the standard spells it).
    pub fn parse(code: &str) -> Result<Self, String> {
        CURRENCIES
            .iter()
            .find(|known| **known == code)
            .map(|known| Self(known))
            .ok_or_else(|| format!("`{code}` is not an ISO 4217 currency code such as EUR or USD"))
    }

    /// The code.
    pub fn code(self) -> &'static str {
        self.0
    }
}

// === impl Charge ===

impl Charge {
    /// Checks every field and reports every problem at once.
    pub fn parse(request: &pb::ProcessPaymentRequest) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut violation = |field, description| {
            violations.push(FieldViolation { field, description });
        };

        let order_id = OrderId::parse(&request.order_id)
            .map_err(|why| violation("order_id", why))
            .ok();

        let (amount_minor, currency) = match &request.amount {
            None => {
                violation("amount", "is required".to_owned());
                (None, None)
            }
            Some(money) => {
                let amount = if money.amount_minor <= 0 {
                    violation(
                        "amount.amount_minor",
                        format!("must be greater than 0, got {}", money.amount_minor),
                    );
                    None
                } else if money.amount_minor > MAX_AMOUNT_MINOR {
                    violation(
                        "amount.amount_minor",
                        format!(
                            "must be at most {MAX_AMOUNT_MINOR}, got {}",
                            money.amount_minor
                        ),
                    );
                    None
                } else {
                    Some(money.amount_minor)
                };
                let currency = Currency::parse(&money.currency_code)
                    .map_err(|why| violation("amount.currency_code", why))
                    .ok();
                (amount, currency)
            }
        };

        let method = match pb::PaymentMethod::try_from(request.method) {
            Ok(pb::PaymentMethod::Unspecified) => {
                violation(
                    "method",
                    "is required (CARD, BANK_TRANSFER or WALLET)".to_owned(),
                );
                None
            }
            Ok(method) => Some(method),
            Err(_) => {
                violation(
                    "method",
                    format!("{} is not a known payment method", request.method),
                );
                None
            }
        };

        match (order_id, amount_minor, currency, method) {
            (Some(order_id), Some(amount_minor), Some(currency), Some(method)) => Ok(Self {
                order_id,
                amount_minor,
                currency,
                method,
            }),
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        order_id: &str,
        amount: i64,
        currency: &str,
        method: i32,
    ) -> pb::ProcessPaymentRequest {
        pb::ProcessPaymentRequest {
            order_id: order_id.to_owned(),
            amount: Some(pb::Money {
                amount_minor: amount,
                currency_code: currency.to_owned(),
            }),
            method,
        }
    }

    #[test]
    fn a_valid_request_parses() {
        let charge = Charge::parse(&request("ord-1", 1999, "EUR", 1)).expect("valid");
        assert_eq!(charge.order_id.as_str(), "ord-1");
        assert_eq!(charge.currency.code(), "EUR");
        assert_eq!(charge.method, pb::PaymentMethod::Card);
    }

    #[test]
    fn every_bad_field_is_named() {
        let violations = Charge::parse(&request("", 0, "usd", 0)).expect_err("all bad");
        let fields: Vec<_> = violations.iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "order_id",
                "amount.amount_minor",
                "amount.currency_code",
                "method"
            ]
        );
        let missing = Charge::parse(&pb::ProcessPaymentRequest::default()).expect_err("empty");
        assert!(missing.iter().any(|v| v.field == "amount"));
    }

    #[test]
    fn order_ids_are_bounded() {
        assert!(OrderId::parse(&"a".repeat(128)).is_ok());
        assert!(OrderId::parse(&"a".repeat(129)).is_err());
        assert!(OrderId::parse("ord 1").is_err());
        assert!(OrderId::parse("ord/1").is_err());
    }

    #[test]
    fn currencies_are_iso_4217() {
        assert!(Currency::parse("JPY").is_ok());
        for bad in ["", "EU", "EURO", "eur", "XYZ"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(
            CURRENCIES.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, no duplicates"
        );
    }
}
