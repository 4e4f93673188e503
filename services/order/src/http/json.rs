//! The JSON forms of the API, read field by field so that every refusal names its field
//! (`lines[2].quantity: must be a whole number`) and unknown fields are refused; serde's own
//! messages give a line and a column instead.

use serde_json::{Map, Value, json};

use crate::{
    catalogue::Catalogue,
    domain::{FieldViolation, LineInput, Order, PlaceOrderInput},
};

/// Reads a PlaceOrder body: `{"customer_id": "...", "lines": [{"sku": "...", "quantity": 1}]}`.
pub(super) fn place_order(
    body: &Value,
    idempotency_key: Option<String>,
) -> Result<PlaceOrderInput, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![FieldViolation::new(
            "",
            "the body must be a JSON object",
        )]);
    };
    refuse_unknown(object, "", &["customer_id", "lines"], &mut violations);

    let customer_id = match object.get("customer_id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            violations.push(FieldViolation::new("customer_id", "must be a string"));
            String::new()
        }
        None => {
            violations.push(FieldViolation::new("customer_id", "is required"));
            String::new()
        }
    };

    let mut lines = Vec::new();
    match object.get("lines") {
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let at = |field: &str| format!("lines[{index}].{field}");
                let Some(line) = item.as_object() else {
                    violations.push(FieldViolation::new(
                        format!("lines[{index}]"),
                        "must be an object",
                    ));
                    continue;
                };
                refuse_unknown(
                    line,
                    &format!("lines[{index}]."),
                    &["sku", "quantity"],
                    &mut violations,
                );
                let sku = match line.get("sku") {
                    Some(Value::String(sku)) => Some(sku.clone()),
                    Some(_) => {
                        violations.push(FieldViolation::new(at("sku"), "must be a string"));
                        None
                    }
                    None => {
                        violations.push(FieldViolation::new(at("sku"), "is required"));
                        None
                    }
                };
                let quantity = match line.get("quantity") {
                    Some(Value::Number(number)) => match (number.as_i64(), number.as_u64()) {
                        (Some(quantity), _) => Some(quantity),
                        // Larger than i64: out of range all the same, and said so by validation.
                        (None, Some(_)) => Some(i64::MAX),
                        (None, None) => {
                            violations.push(FieldViolation::new(
                                at("quantity"),
                                "must be a whole number",
                            ));
                            None
                        }
                    },
                    Some(_) => {
                        violations.push(FieldViolation::new(at("quantity"), "must be a number"));
                        None
                    }
                    None => {
                        violations.push(FieldViolation::new(at("quantity"), "is required"));
                        None
                    }
                };
                if let (Some(sku), Some(quantity)) = (sku, quantity) {
                    lines.push(LineInput { sku, quantity });
                }
            }
        }
        Some(_) => violations.push(FieldViolation::new("lines", "must be an array")),
        None => violations.push(FieldViolation::new("lines", "is required")),
    }

    if violations.is_empty() {
        Ok(PlaceOrderInput {
            customer_id,
            lines,
            idempotency_key,
        })
    } else {
        Err(violations)
    }
}

fn refuse_unknown(
    object: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
    violations: &mut Vec<FieldViolation>,
) {
    for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
        violations.push(FieldViolation::new(
            format!("{prefix}{key}"),
            format!("is not a known field (expected: {})", known.join(", ")),
        ));
    }
}

/// An order as the API shows it.
pub(super) fn order(order: &Order) -> Value {
    let money = |amount_minor: i64| json!({ "amount_minor": amount_minor, "currency_code": order.total.currency_code });
    json!({
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": order.status.as_str(),
        "lines": order.lines.iter().map(|line| json!({
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": money(line.unit_price_minor),
        })).collect::<Vec<_>>(),
        "total": money(order.total.amount_minor),
        "create_time": timestamp(order.created_at_ms),
        "update_time": timestamp(order.updated_at_ms),
    })
}

/// The catalogue as the API shows it.
pub(super) fn catalogue(catalogue: &Catalogue) -> Value {
    json!({
        "products": catalogue.products().iter().map(|product| json!({
            "sku": product.sku,
            "name": product.name,
            "unit_price": {
                "amount_minor": product.unit_price_minor,
                "currency_code": catalogue.currency_code(),
            },
        })).collect::<Vec<_>>(),
    })
}

/// RFC 3339 in UTC with milliseconds.
fn timestamp(millis: i64) -> String {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or_default());
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        place_order(&body, None)
            .expect_err("refused")
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn a_well_formed_body_is_read() {
        let input = place_order(
            &json!({ "customer_id": "c-1", "lines": [{ "sku": "CAP-RED", "quantity": 2 }] }),
            Some("key-1".to_owned()),
        )
        .expect("valid");
        assert_eq!(input.lines[0].quantity, 2);
        assert_eq!(input.idempotency_key.as_deref(), Some("key-1"));
    }

    #[test]
    fn types_and_unknown_fields_are_named() {
        assert_eq!(fields(json!([])), [""]);
        assert_eq!(fields(json!({ "lines": [] })), ["customer_id"]);
        assert_eq!(
            fields(json!({ "customer_id": 7, "lines": "many", "coupon": "X" })),
            ["coupon", "customer_id", "lines"]
        );
        assert_eq!(
            fields(json!({ "customer_id": "c", "lines": [
                { "sku": 1, "quantity": "2" },
                { "sku": "A", "quantity": 1.5, "gift": true },
                7,
            ] })),
            [
                "lines[0].sku",
                "lines[0].quantity",
                "lines[1].gift",
                "lines[1].quantity",
                "lines[2]"
            ]
        );
    }

    #[test]
    fn huge_quantities_reach_validation() {
        let input = place_order(
            &json!({ "customer_id": "c", "lines": [{ "sku": "A", "quantity": 18_446_744_073_709_551_615_u64 }] }),
            None,
        )
        .expect("read; range is validation's job");
        assert_eq!(input.lines[0].quantity, i64::MAX);
    }
}
