//! The application: what PlaceOrder, GetOrder, ListOrders and the catalogue do, whichever
//! transport asked. The HTTP and gRPC edges only map types and errors onto these functions.

use std::{sync::Arc, time::Duration};

use store::now_ms;
use tokio::time::Instant;
use tracing::Span;

use crate::{
    catalogue::Catalogue,
    domain::{FieldViolation, Order, OrderStatus, PlaceOrderInput, validate},
    metrics,
    payment::{Charge, PaymentClient},
    store::{Inserted, Store, StoreError},
};

/// The default and largest page of ListOrders.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest page of ListOrders.
pub const MAX_PAGE_SIZE: u32 = 100;
/// How long a replayed request waits for the original (still in flight) to settle.
const REPLAY_WAIT: Duration = Duration::from_secs(2);

/// Why an application call failed. The edges map each to a status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Refused input; nothing was stored.
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// The idempotency key belongs to another request.
    #[error("the idempotency key was already used for a different request (order {order_id})")]
    KeyReused {
        /// The order the key belongs to.
        order_id: String,
    },
    /// No such order.
    #[error("no order `{0}`")]
    NotFound(String),
    /// The store's writer is saturated and the order was shed; nothing was stored. The
    /// client may retry later.
    #[error("the order store is saturated; the order was not taken")]
    Busy,
    /// The store failed; the client may retry (with the same idempotency key).
    #[error("the order store is unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::KeyReused { order_id } => AppError::KeyReused { order_id },
            StoreError::Busy(_) => AppError::Busy,
            other => AppError::Store(other),
        }
    }
}

/// A placed order, and whether it was a replay of an earlier request with the same key.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order as stored.
    pub order: Order,
    /// True when the idempotency key named an existing order.
    pub replayed: bool,
}

/// The application state both edges share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    catalogue: Arc<Catalogue>,
    payment: PaymentClient,
    /// How long a placed order waits for payment, from its arrival.
    payment_budget: Duration,
}

impl App {
    /// The application over its store, catalogue and payment client; a placed order waits
    /// at most `payment_budget` from its arrival for payment before it falls back.
    pub fn new(
        store: Store,
        catalogue: Catalogue,
        payment: PaymentClient,
        payment_budget: Duration,
    ) -> Self {
        Self {
            store,
            catalogue: Arc::new(catalogue),
            payment,
            payment_budget,
        }
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Validates, stores the order as PENDING, charges it, and stores how that went before
    /// returning: CONFIRMED, REJECTED (declined) or PAYMENT_PENDING (payment could not say; the
    /// reconciler will). `deadline` is the caller's, if it gave one; payment gets the payment
    /// budget from the order's arrival, or less if the caller's deadline is sooner.
    #[tracing::instrument(name = "order.place", skip_all, fields(order_id, customer_id = %input.customer_id))]
    pub async fn place_order(
        &self,
        input: PlaceOrderInput,
        deadline: Option<Instant>,
    ) -> Result<Placed, AppError> {
        let budget = Instant::now() + self.payment_budget;
        let deadline = deadline.map_or(budget, |caller| caller.min(budget));
        let valid = validate(&self.catalogue, &input).map_err(AppError::Invalid)?;
        let order_id = format!("ord_{:032x}", rand::random::<u128>());
        let order = match self
            .store
            .insert_pending(&order_id, &valid, now_ms())
            .await
            .inspect_err(|error| match error {
                StoreError::Busy(_) => metrics::store_shed(),
                // The client's mistake, answered 422: no order, and nothing failed here
                // (http_server_request_duration_seconds counts it by status code).
                StoreError::KeyReused { .. } => {}
                _ => metrics::order_failed(),
            })? {
            Inserted::New(order) => order,
            Inserted::Existing(order) => {
                Span::current().record("order_id", order.order_id.as_str());
                let order = self.settled(order).await?;
                tracing::info!(status = order.status.as_str(), "order.replayed");
                return Ok(Placed {
                    order,
                    replayed: true,
                });
            }
        };
        Span::current().record("order_id", order.order_id.as_str());

        let status = match self.payment.charge(&order, Some(deadline)).await {
            Charge::Captured => OrderStatus::Confirmed,
            Charge::Declined(reason) => {
                tracing::info!(reason, "order.declined");
                OrderStatus::Rejected
            }
            Charge::Deferred(reason) => {
                metrics::fallback(reason);
                tracing::warn!(reason = reason.as_str(), "order.fallback");
                OrderStatus::PaymentPending
            }
        };
        let order = self
            .store
            .transition(order, status, now_ms())
            .await
            .inspect_err(|_| metrics::order_failed())?;
        metrics::order(order.status);
        tracing::info!(
            status = order.status.as_str(),
            total_minor = order.total.amount_minor,
            "order.placed"
        );
        Ok(Placed {
            order,
            replayed: false,
        })
    }

    /// Waits (briefly) for an order placed by a concurrent request with the same key to leave
    /// PENDING, so that a retry sees what the original request saw.
    async fn settled(&self, mut order: Order) -> Result<Order, AppError> {
        let until = Instant::now() + REPLAY_WAIT;
        while order.status == OrderStatus::Pending && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            order = self
                .store
                .get(&order.order_id)
                .await?
                .ok_or_else(|| AppError::NotFound(order.order_id.clone()))?;
        }
        Ok(order)
    }

    /// The order `order_id`.
    #[tracing::instrument(name = "order.get", skip_all, fields(order_id))]
    pub async fn get_order(&self, order_id: &str) -> Result<Order, AppError> {
        self.store
            .get(order_id)
            .await?
            .ok_or_else(|| AppError::NotFound(order_id.to_owned()))
    }

    /// A page of a customer's orders, newest first, and the token of the next page.
    #[tracing::instrument(name = "order.list", skip_all, fields(customer_id))]
    pub async fn list_orders(
        &self,
        customer_id: &str,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<(Vec<Order>, Option<String>), AppError> {
        let mut violations = Vec::new();
        if let Err(violation) = crate::domain::validation_customer_id(customer_id) {
            violations.push(violation);
        }
        let size = match page_size {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(size) if size <= MAX_PAGE_SIZE => size,
            Some(size) => {
                violations.push(FieldViolation::new(
                    "page_size",
                    format!("must be at most {MAX_PAGE_SIZE}, got {size}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        let after = match page_token.filter(|token| !token.is_empty()) {
            None => None,
            Some(token) => match parse_page_token(token) {
                Some(cursor) => Some(cursor),
                None => {
                    violations.push(FieldViolation::new(
                        "page_token",
                        "is not a token from a previous response",
                    ));
                    None
                }
            },
        };
        if !violations.is_empty() {
            return Err(AppError::Invalid(violations));
        }
        let mut orders = self.store.list(customer_id, size + 1, after).await?;
        let next = if orders.len() > size as usize {
            orders.truncate(size as usize);
            orders
                .last()
                .map(|last| format!("{}.{}", last.created_at_ms, last.order_id))
        } else {
            None
        };
        Ok((orders, next))
    }
}

fn parse_page_token(token: &str) -> Option<(i64, String)> {
    let (millis, order_id) = token.split_once('.')?;
    let valid_id = order_id.len() == 36
        && order_id.starts_with("ord_")
        && order_id[4..].bytes().all(|b| b.is_ascii_hexdigit());
    valid_id.then_some((millis.parse().ok()?, order_id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_page_token;

    #[test]
    fn page_tokens_round_trip_and_refuse_junk() {
        let id = format!("ord_{:032x}", 7_u128);
        assert_eq!(parse_page_token(&format!("123.{id}")), Some((123, id)));
        for bad in [
            "",
            "123",
            "x.ord_1",
            "123.ord_zz",
            "123.'; DROP TABLE orders",
        ] {
            assert_eq!(parse_page_token(bad), None, "{bad}");
        }
    }
}
