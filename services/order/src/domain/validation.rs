//! The checks of a PlaceOrder request, shared by the HTTP and gRPC edges.

use serde::Serialize;

use crate::catalogue::Catalogue;

/// The most lines an order may have.
pub const MAX_LINES: usize = 50;
/// The most of one sku a line may ask for.
pub const MAX_QUANTITY: i64 = 100;

/// A request as the edges read it, before any check. Quantities are `i64` so that a negative
/// or huge number in JSON reaches the check (and its message) instead of failing to parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceOrderInput {
    /// `[A-Za-z0-9_-]`, 1..=64 characters.
    pub customer_id: String,
    /// 1..=50 lines.
    pub lines: Vec<LineInput>,
    /// Optional retry key, 1..=128 visible ASCII characters.
    pub idempotency_key: Option<String>,
}

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInput {
    /// Must be in the catalogue.
    pub sku: String,
    /// 1..=100.
    pub quantity: i64,
}

/// One refused field, named as the request names it (`lines[2].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    /// The field's path.
    pub field: String,
    /// What is wrong with it, for a person.
    #[serde(rename = "message")]
    pub description: String,
}

/// A checked, priced order, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrder {
    /// Checked customer id.
    pub customer_id: String,
    /// Checked, priced lines.
    pub lines: Vec<ValidLine>,
    /// Sum of the lines, in minor units of `currency_code`.
    pub total_minor: i64,
    /// The catalogue's currency.
    pub currency_code: String,
    /// Checked retry key.
    pub idempotency_key: Option<String>,
}

/// A checked, priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLine {
    /// A catalogue sku.
    pub sku: String,
    /// 1..=100.
    pub quantity: u32,
    /// The catalogue price now.
    pub unit_price_minor: i64,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl ValidOrder {
    /// A stable digest of what was asked (customer and lines), stored with the order so that
    /// a reused idempotency key with a different request can be told apart from a retry.
    pub fn fingerprint(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|line| format!("{}x{}", line.sku, line.quantity))
            .collect();
        format!("{}|{}", self.customer_id, lines.join(","))
    }
}

/// Checks every field against the rules and the catalogue, reporting every problem at once.
pub fn validate(
    catalogue: &Catalogue,
    input: &PlaceOrderInput,
) -> Result<ValidOrder, Vec<FieldViolation>> {
    let mut violations = Vec::new();

    if let Err(why) = check_customer_id(&input.customer_id) {
        violations.push(FieldViolation::new("customer_id", why));
    }
    if let Some(key) = &input.idempotency_key
        && let Err(why) = check_idempotency_key(key)
    {
        violations.push(FieldViolation::new("idempotency_key", why));
    }

    if input.lines.is_empty() {
        violations.push(FieldViolation::new("lines", "must hold at least one line"));
    } else if input.lines.len() > MAX_LINES {
        violations.push(FieldViolation::new(
            "lines",
            format!(
                "must hold at most {MAX_LINES} lines, got {}",
                input.lines.len()
            ),
        ));
    }

    let mut lines = Vec::with_capacity(input.lines.len().min(MAX_LINES));
    let mut total: Option<i64> = Some(0);
    for (index, line) in input.lines.iter().enumerate().take(MAX_LINES) {
        let price = match catalogue.price(&line.sku) {
            Some(price) => Some(price),
            None => {
                violations.push(FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!(
                        "`{}` is not in the catalogue (GET /v1/products lists it)",
                        line.sku
                    ),
                ));
                None
            }
        };
        let quantity = if (1..=MAX_QUANTITY).contains(&line.quantity) {
            u32::try_from(line.quantity).ok()
        } else {
            violations.push(FieldViolation::new(
                format!("lines[{index}].quantity"),
                format!("must be within 1..={MAX_QUANTITY}, got {}", line.quantity),
            ));
            None
        };
        if let (Some(price), Some(quantity)) = (price, quantity) {
            total = total.and_then(|sum| price.checked_mul(i64::from(quantity))?.checked_add(sum));
            lines.push(ValidLine {
                sku: line.sku.clone(),
                quantity,
                unit_price_minor: price,
            });
        }
    }
    let Some(total_minor) = total else {
        violations.push(FieldViolation::new(
            "lines",
            "the total is too large to charge",
        ));
        return Err(violations);
    };

    if violations.is_empty() {
        Ok(ValidOrder {
            customer_id: input.customer_id.clone(),
            lines,
            total_minor,
            currency_code: catalogue.currency_code().to_owned(),
            idempotency_key: input.idempotency_key.clone(),
        })
    } else {
        Err(violations)
    }
}

fn check_customer_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is required".to_owned());
    }
    if id.len() > 64 {
        return Err(format!("must be at most 64 characters, got {}", id.len()));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("may hold only letters, digits, - and _".to_owned());
    }
    Ok(())
}

/// Checks a customer id given alone (ListOrders).
pub fn customer_id(id: &str) -> Result<(), FieldViolation> {
    check_customer_id(id).map_err(|why| FieldViolation::new("customer_id", why))
}

fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 128 {
        return Err(format!("must be 1..=128 characters, got {}", key.len()));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may hold only visible ASCII characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(lines: &[(&str, i64)]) -> PlaceOrderInput {
        PlaceOrderInput {
            customer_id: "cust-1".to_owned(),
            lines: lines
                .iter()
                .map(|(sku, quantity)| LineInput {
                    sku: (*sku).to_owned(),
                    quantity: *quantity,
                })
                .collect(),
            idempotency_key: None,
        }
    }

    fn fields(result: Result<ValidOrder, Vec<FieldViolation>>) -> Vec<String> {
        result
            .expect_err("refused")
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn a_valid_order_is_priced() {
        let catalogue = Catalogue::shipped();
        let order =
            validate(&catalogue, &input(&[("CAP-RED", 2), ("MUG-LOGO", 1)])).expect("valid");
        assert_eq!(order.total_minor, 2 * 1500 + 890);
        assert_eq!(order.currency_code, "EUR");
        assert_eq!(order.lines[0].unit_price_minor, 1500);
    }

    #[test]
    fn each_bad_field_is_named() {
        let catalogue = Catalogue::shipped();
        assert_eq!(
            fields(validate(
                &catalogue,
                &input(&[("NOPE", 1), ("CAP-RED", 0), ("CAP-RED", 101)])
            )),
            ["lines[0].sku", "lines[1].quantity", "lines[2].quantity"]
        );
        assert_eq!(fields(validate(&catalogue, &input(&[]))), ["lines"]);
        let too_many = vec![("CAP-RED", 1); 51];
        assert_eq!(fields(validate(&catalogue, &input(&too_many))), ["lines"]);
        let mut bad_customer = input(&[("CAP-RED", 1)]);
        bad_customer.customer_id = "cust 1".to_owned();
        bad_customer.idempotency_key = Some(String::new());
        assert_eq!(
            fields(validate(&catalogue, &bad_customer)),
            ["customer_id", "idempotency_key"]
        );
    }

    #[test]
    fn an_overflowing_total_is_refused() {
        let catalogue = Catalogue::from_json(
            r#"{"currency_code":"EUR","products":[{"sku":"BIG","name":"Big","unit_price_minor":9223372036854775807}]}"#,
        )
        .expect("valid catalogue");
        assert_eq!(
            fields(validate(&catalogue, &input(&[("BIG", 2)]))),
            ["lines"]
        );
    }
}
