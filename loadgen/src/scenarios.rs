//! The goose scenarios: what a shopper does during a sale.
//!
//! - `Browse` (weight 3): `GET /v1/products`, then thinks.
//! - `Buy` (weight 1): `POST /v1/orders` with a fresh `Idempotency-Key`, then follows the
//!   `Location` header (`GET /v1/orders/{id}`) to read the order's status.
//!
//! Those two are the closed model. Under the open model one scenario, `Shopper`, takes each
//! arrival from the [`Dispatcher`] and browses or buys as the arrival says (one in four buys),
//! with no think time: the schedule sets the pace. Its first request's answer is also timed
//! from the arrival's scheduled moment ([`ResponseTimes`]).
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
use tokio::time::Instant;

use crate::{arrivals::Dispatcher, latency::ResponseTimes, live::Live};

/// Request names, as goose's metrics and the loadgen series label them.
pub const GET_PRODUCTS: &str = "GetProducts";
/// See [`GET_PRODUCTS`].
pub const PLACE_ORDER: &str = "PlaceOrder";
/// See [`GET_PRODUCTS`].
pub const GET_ORDER: &str = "GetOrder";

/// What every user shares: the catalogue's SKUs, a counter for idempotency keys, the number
/// of running users, and the live view's recorder.
#[derive(Debug)]
pub struct Shared {
    skus: Vec<String>,
    run_id: String,
    next_key: AtomicU64,
    users: AtomicUsize,
    live: Arc<Live>,
}

impl Shared {
    /// `skus` to order from (at least one); `run_id` makes idempotency keys unique per run;
    /// every answer is also recorded in `live`.
    pub fn new(skus: Vec<String>, run_id: String, live: Arc<Live>) -> Arc<Self> {
        Arc::new(Self {
            skus,
            run_id,
            next_key: AtomicU64::new(0),
            users: AtomicUsize::new(0),
            live,
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
        .register_transaction({
            let shared = shared.clone();
            Transaction::new(Arc::new(move |user| {
                let shared = shared.clone();
                Box::pin(async move { get_products_from(user, &shared, None).await })
            }))
        });
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
            Box::pin(async move { place_and_follow(user, &shared, None).await })
        })));
    Ok(vec![browse, buy])
}

/// The open model's scenario: each user serves arrivals from `dispatcher`, timing answers into
/// `times`; with `browse_only` (catalogue) no arrival buys.
pub fn open(
    shared: &Arc<Shared>,
    dispatcher: Arc<Dispatcher>,
    times: Arc<ResponseTimes>,
    browse_only: bool,
) -> Scenario {
    let serving = shared.clone();
    scenario!("Shopper")
        .register_transaction(user_starts(shared))
        .register_transaction(user_stops(shared))
        .register_transaction(Transaction::new(Arc::new(move |user| {
            let (shared, dispatcher, times) = (serving.clone(), dispatcher.clone(), times.clone());
            Box::pin(async move {
                let Some(due) = dispatcher.next().await else {
                    // The schedule is over: idle until goose stops the user.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return Ok(());
                };
                let from = Some((due.at, times.as_ref()));
                if due.buys && !browse_only {
                    place_and_follow(user, &shared, from).await
                } else {
                    get_products_from(user, &shared, from).await
                }
            })
        })))
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

/// An arrival's due moment and where its response times go (open model only).
type From<'a> = Option<(Instant, &'a ResponseTimes)>;

async fn get_products_from(
    user: &mut GooseUser,
    shared: &Shared,
    from: From<'_>,
) -> TransactionResult {
    let request = GooseRequest::builder()
        .method(GooseMethod::Get)
        .path("/v1/products")
        .name(GET_PRODUCTS)
        .build();
    let goose = user.request(request).await?;
    record(GET_PRODUCTS, &goose, shared, from);
    Ok(())
}

async fn place_and_follow(
    user: &mut GooseUser,
    shared: &Shared,
    from: From<'_>,
) -> TransactionResult {
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
    record(PLACE_ORDER, &goose, shared, from);
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
        // Sent the moment the order's answer came: its response time is its service time.
        record(
            GET_ORDER,
            &goose,
            shared,
            from.map(|(_, times)| (Instant::now(), times)),
        );
    }
    Ok(())
}

fn record(
    name: &'static str,
    goose: &goose::goose::GooseResponse,
    shared: &Shared,
    from: From<'_>,
) {
    let status = goose
        .response
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16());
    let service = std::time::Duration::from_millis(goose.request.response_time)
        + std::time::Duration::from_micros(u64::from(goose.request.response_time_fraction_us));
    crate::metrics::request(name, status, service.as_secs_f64());
    let mut elapsed = service;
    if let Some((due, times)) = from {
        // From the schedule: the service time, or longer if the arrival waited to be sent.
        elapsed = due.elapsed().max(service);
        times.record(name, elapsed);
    }
    let error = goose
        .response
        .as_ref()
        .err()
        .map(|error| crate::root_cause(error));
    shared.live.record(name, status, elapsed, error.as_deref());
}
