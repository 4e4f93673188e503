//! The baselines, run as child processes of this binary, on the same `OrderService` contract
//! as the real service:
//! - echo, a bare tonic server: `PlaceOrder` answers the request's lines back as a confirmed
//!   order: the same messages on the wire as the real service, and nothing else (no store, no
//!   payment call, no middleware, no telemetry);
//! - relay, a bare tonic server that answers `PlaceOrder` by calling echo: the two hops of
//!   the real service (client → order → payment) with no work at either.

use contracts::order::v1::{
    self as pb,
    order_service_client::OrderServiceClient,
    order_service_server::{OrderService, OrderServiceServer},
};
use tonic::{Request, Response, Status, transport::Channel};

/// Serves echo on 127.0.0.1 and a free port until killed; says where on stdout as a JSON line,
/// the way the services do.
pub async fn serve() -> anyhow::Result<()> {
    serve_on_free_port("echo", Echo).await
}

/// Serves the relay in front of the echo server at `upstream` (`http://host:port`).
pub async fn serve_relay(upstream: String) -> anyhow::Result<()> {
    let upstream = OrderServiceClient::connect(upstream).await?;
    serve_on_free_port("relay", Relay { upstream }).await
}

async fn serve_on_free_port(name: &str, service: impl OrderService) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!(
        "{}",
        serde_json::json!({ "message": format!("{name}.listening"), "fields": { "grpc_addr": addr.to_string() } })
    );
    tonic::transport::Server::builder()
        .add_service(OrderServiceServer::new(service))
        // As the services' skeleton does: tonic ignores its own `tcp_nodelay` for a listener
        // handed in, and with Nagle on a response written in two segments waits for the
        // client's delayed ACK.
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}

/// One HTTP/2 connection to echo, as order keeps one to payment.
struct Relay {
    upstream: OrderServiceClient<Channel>,
}

#[tonic::async_trait]
impl OrderService for Relay {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        self.upstream
            .clone()
            .place_order(request.into_inner())
            .await
    }

    async fn get_order(
        &self,
        _request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        Err(Status::unimplemented("the relay only places orders"))
    }

    async fn list_orders(
        &self,
        _request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        Err(Status::unimplemented("the relay only places orders"))
    }
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
