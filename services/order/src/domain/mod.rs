//! Orders as the application sees them, and the checks a request passes before anything is
//! stored: parse, don't validate. A [`ValidOrder`] exists only if every field was valid and it
//! was priced without overflow.

mod validation;

pub use validation::{
    FieldViolation, LineInput, PlaceOrderInput, ValidLine, ValidOrder,
    customer_id as validation_customer_id, validate,
};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Stored; payment not answered yet.
    Pending,
    /// Paid.
    Confirmed,
    /// Accepted; payment could not be reached and the reconciler will charge it.
    PaymentPending,
    /// Payment declined the charge.
    Rejected,
}

impl OrderStatus {
    /// The stored and JSON spelling (`PAYMENT_PENDING`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::PaymentPending => "PAYMENT_PENDING",
            OrderStatus::Rejected => "REJECTED",
        }
    }

    /// The metric label (`payment_pending`).
    pub const fn label(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::PaymentPending => "payment_pending",
            OrderStatus::Rejected => "rejected",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::PaymentPending,
            OrderStatus::Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// Whether payment still has to be settled.
    pub const fn is_unsettled(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::PaymentPending)
    }
}

/// An amount in integer minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency_code: String,
}

/// A stored order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Catalogue sku.
    pub sku: String,
    /// 1..=100.
    pub quantity: u32,
    /// The price when the order was placed, in minor units.
    pub unit_price_minor: i64,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// `ord_` and 32 hex digits; payment's idempotency key too.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// What, in the order given.
    pub lines: Vec<Line>,
    /// The sum of the lines.
    pub total: Money,
    /// Where it stands.
    pub status: OrderStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}
