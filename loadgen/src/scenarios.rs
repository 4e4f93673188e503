//! The goose scenarios: what a shopper does during a sale.
//!
//! - `Browse` (weight 3): `GET /v1/products`, then thinks.
//! - `Buy` (weight 1): `POST /v1/orders` with a fresh `Idempotency-Key`, then follows the
//!   `Location` header (`GET /v1/orders/{id}`) to read the order's status.
//!
//! 201 CONFIRMED, 202 PAYMENT_PENDING and 402 REJECTED are all correct answers to an order,
//! so each is marked a success in goose (which would count 402 as a failure); goose keeps the
//! per-status counts, so a 202 is still counted apart. Every request is also recorded in
//! `loadgen_requests_total` / `loadgen_request_duration_seconds`.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use goose::prelude::*;
use serde_json::json;

/// Request names, as goose's metrics and the loadgen series label them.
pub const GET_PRODUCTS: &str = "GetProducts";
/// See [`GET_PRODUCTS`].
pub const PLACE_ORDER: &str = "PlaceOrder";
/// See [`GET_PRODUCTS`].
pub const GET_ORDER: &str = "GetOrder";

/// What every user shares: the catalogue's SKUs, a counter for idempotency keys, the number
/// of running users.
#[derive(Debug)]
pub struct Shared {
    skus: Vec<String>,
    run_id: String,
    next_key: AtomicU64,
    users: AtomicUsize,
}

impl Shared {
    /// `skus` to order from (at least one); `run_id` makes idempotency keys unique per run.
    pub fn new(skus: Vec<String>, run_id: String) -> Arc<Self> {
        Arc::new(Self {
            skus,
            run_id,
            next_key: AtomicU64::new(0),
            users: AtomicUsize::new(0),
        })
    }
}

/// The scenarios, with think times between `think.0` and `think.1`; with `browse_only`, only
/// `Browse` (the throughput benchmark).
pub fn scenarios(
    shared: &Arc<Shared>,
    think: (std::time::Duration, std::time::Duration),
    browse_only: bool,
) -> Result<Vec<Scenario>, GooseError> {
    let browse = scenario!("Browse")
        .set_weight(3)?
        .set_wait_time(think.0, think.1)?
        .register_transaction(user_starts(shared))
        .register_transaction(user_stops(shared))
        .register_transaction(Transaction::new(Arc::new(|user| {
            Box::pin(get_products(user))
        })));
    if browse_only {
        return Ok(vec![browse]);
    }
    let buyer = shared.clone();
    let buy = scenario!("Buy")
        .set_weight(1)?
        .set_wait_time(think.0, think.1)?
        .register_transaction(user_starts(shared))
        .register_transaction(user_stops(shared))
        .register_transaction(Transaction::new(Arc::new(move |user| {
            let shared = buyer.clone();
            Box::pin(async move { place_and_follow(user, &shared).await })
        })));
    Ok(vec![browse, buy])
}

fn user_starts(shared: &Arc<Shared>) -> Transaction {
    let shared = shared.clone();
    Transaction::new(Arc::new(move |_user| {
        let shared = shared.clone();
        Box::pin(async move {
            let now = shared.users.fetch_add(1, Ordering::Relaxed) + 1;
            crate::metrics::users(now);
            Ok(())
        })
    }))
    .set_on_start()
}

fn user_stops(shared: &Arc<Shared>) -> Transaction {
    let shared = shared.clone();
    Transaction::new(Arc::new(move |_user| {
        let shared = shared.clone();
        Box::pin(async move {
            let now = shared
                .users
                .fetch_sub(1, Ordering::Relaxed)
                .saturating_sub(1);
            crate::metrics::users(now);
            Ok(())
        })
    }))
    .set_on_stop()
}

async fn get_products(user: &mut GooseUser) -> TransactionResult {
    let request = GooseRequest::builder()
        .method(GooseMethod::Get)
        .path("/v1/products")
        .name(GET_PRODUCTS)
        .build();
    let goose = user.request(request).await?;
    record(GET_PRODUCTS, &goose);
    Ok(())
}

async fn place_and_follow(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let n = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let sku = &shared.skus[(n as usize) % shared.skus.len().max(1)];
    let key = format!("loadgen-{}-{n}", shared.run_id);
    let body = json!({
        "customer_id": format!("loadgen-{}", user.weighted_users_index),
        "lines": [{ "sku": sku, "quantity": 1 + n % 3 }],
    });
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/v1/orders")?
        .header("idempotency-key", key)
        .json(&body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/v1/orders")
        .name(PLACE_ORDER)
        .set_request_builder(builder)
        .build();
    let mut goose = user.request(request).await?;
    record(PLACE_ORDER, &goose);
    let (status, location) = match &goose.response {
        Ok(response) => (
            Some(response.status().as_u16()),
            response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (None, None),
    };
    if matches!(status, Some(201 | 202 | 402)) {
        user.set_success(&mut goose.request)?;
    }
    if let Some(location) = location {
        let request = GooseRequest::builder()
            .method(GooseMethod::Get)
            .path(location.as_str())
            .name(GET_ORDER)
            .build();
        let goose = user.request(request).await?;
        record(GET_ORDER, &goose);
    }
    Ok(())
}

fn record(name: &'static str, goose: &goose::goose::GooseResponse) {
    let status = goose
        .response
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16());
    crate::metrics::request(name, status, goose.request.response_time as f64 / 1000.0);
}
