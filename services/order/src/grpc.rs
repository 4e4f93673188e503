//! `stormproof.order.v1.OrderService` over tonic: maps messages onto the [`App`] and its errors
//! onto `tonic::Status` (INVALID_ARGUMENT with `google.rpc.BadRequest` naming each field).

use contracts::order::v1::{self as pb, order_service_server::OrderService};
use resilience::classify::RETRY_PUSHBACK_HEADER;
use resilience::deadline::{GRPC_TIMEOUT_HEADER, parse_grpc_timeout};
use tokio::time::Instant;
use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::{
    app::{App, AppError},
    domain::{LineInput, Order, OrderStatus, PlaceOrderInput},
};

/// The OrderService implementation.
#[derive(Debug, Clone)]
pub struct OrderApi {
    app: App,
}

impl OrderApi {
    /// Serves `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        // The caller's deadline, so payment is not waited for after the caller gave up.
        let deadline = request
            .metadata()
            .get(GRPC_TIMEOUT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_grpc_timeout(value).ok())
            .map(|timeout| Instant::now() + timeout);
        let message = request.into_inner();
        let input = PlaceOrderInput {
            customer_id: message.customer_id,
            lines: message
                .lines
                .into_iter()
                .map(|line| LineInput {
                    sku: line.sku,
                    quantity: i64::from(line.quantity),
                })
                .collect(),
            idempotency_key: Some(message.idempotency_key).filter(|key| !key.is_empty()),
        };
        let placed = self
            .app
            .place_order(input, deadline)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(to_proto(&placed.order)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let order = self
            .app
            .get_order(&request.get_ref().order_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(to_proto(&order)),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let message = request.get_ref();
        let (orders, next) = self
            .app
            .list_orders(
                &message.customer_id,
                Some(message.page_size),
                Some(message.page_token.as_str()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

fn status(error: AppError) -> Status {
    match error {
        AppError::Invalid(violations) => server::grpc::invalid_argument(
            None,
            violations.into_iter().map(|v| (v.field, v.description)),
        ),
        AppError::KeyReused { order_id } => Status::already_exists(format!(
            "the idempotency_key was already used for a different request (order {order_id})"
        )),
        AppError::NotFound(order_id) => Status::not_found(format!("no order `{order_id}`")),
        AppError::Busy => {
            let mut status = Status::resource_exhausted(
                "order is overloaded: too many orders are waiting for the store; nothing was stored",
            );
            status
                .metadata_mut()
                .insert(RETRY_PUSHBACK_HEADER, MetadataValue::from(1000u32));
            status
        }
        AppError::Store(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "order.store_failed"
            );
            Status::unavailable(
                "the order store is unavailable; retry with the same idempotency_key",
            )
        }
    }
}

fn to_proto(order: &Order) -> pb::Order {
    let money = |amount_minor: i64| pb::Money {
        amount_minor,
        currency_code: order.total.currency_code.clone(),
    };
    pb::Order {
        order_id: order.order_id.clone(),
        customer_id: order.customer_id.clone(),
        lines: order
            .lines
            .iter()
            .map(|line| pb::OrderLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price: Some(money(line.unit_price_minor)),
            })
            .collect(),
        total: Some(money(order.total.amount_minor)),
        status: match order.status {
            OrderStatus::Pending => pb::OrderStatus::Pending,
            OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
            OrderStatus::PaymentPending => pb::OrderStatus::PaymentPending,
            OrderStatus::Rejected => pb::OrderStatus::Rejected,
        } as i32,
        create_time: Some(timestamp(order.created_at_ms)),
        update_time: Some(timestamp(order.updated_at_ms)),
    }
}

fn timestamp(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}
