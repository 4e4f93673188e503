//! The baseline: a bare tonic server of the same `OrderService` contract, run as a child
//! process of this binary. `PlaceOrder` answers the request's lines back as a confirmed order:
//! the same messages on the wire as the real service, and nothing else (no store, no payment
//! call, no middleware, no telemetry).

use contracts::order::v1::{
    self as pb,
    order_service_server::{OrderService, OrderServiceServer},
};
use tonic::{Request, Response, Status};

/// Serves on 127.0.0.1 and a free port until killed; says where on stdout as a JSON line, the
/// way the services do.
pub async fn serve() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!(
        "{}",
        serde_json::json!({ "message": "echo.listening", "fields": { "grpc_addr": addr.to_string() } })
    );
    tonic::transport::Server::builder()
        .add_service(OrderServiceServer::new(Echo))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

struct Echo;

#[tonic::async_trait]
impl OrderService for Echo {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(pb::Order {
                order_id: "echo".to_owned(),
                customer_id: request.customer_id,
                lines: request.lines,
                status: pb::OrderStatus::Confirmed.into(),
                ..pb::Order::default()
            }),
        }))
    }

    async fn get_order(
        &self,
        _request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        Err(Status::unimplemented("the echo server only places orders"))
    }

    async fn list_orders(
        &self,
        _request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        Err(Status::unimplemented("the echo server only places orders"))
    }
}
