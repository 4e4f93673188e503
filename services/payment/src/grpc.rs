//! `stormproof.payment.v1.PaymentService` over tonic: faults first (they stand for the network
//! and the machine), then validation, then the ledger.

use std::sync::Arc;

use contracts::payment::v1::{self as pb, payment_service_server::PaymentService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{Charge, OrderId},
    faults::{self, Faults},
    ledger::{Ledger, LedgerError, Recorded, Verdict},
    metrics,
};

/// Why an injected decline says no.
const DECLINE_REASON: &str = "insufficient funds (injected decline)";

/// The PaymentService implementation.
#[derive(Debug, Clone)]
pub struct PaymentApi {
    ledger: Ledger,
    faults: Arc<Faults>,
}

impl PaymentApi {
    /// Serves from `ledger`, misbehaving as `faults` says.
    pub fn new(ledger: Ledger, faults: Arc<Faults>) -> Self {
        Self { ledger, faults }
    }

    /// Carries out the infrastructure faults of a call's plan: an outage answers at once, a
    /// latency delays, a hang never returns, a failure answers UNAVAILABLE.
    async fn misbehave(&self, plan: faults::Plan) -> Result<(), Status> {
        if plan.outage {
            faults::injected("outage");
            return Err(Status::unavailable("payment is down (injected outage)"));
        }
        if !plan.delay.is_zero() {
            faults::injected("latency");
            tokio::time::sleep(plan.delay).await;
        }
        if plan.hang {
            faults::injected("hang");
            tracing::info!(target: "payment.faults", "fault.hang");
            // Never answer: the caller's deadline (or its giving up) ends the call, and tonic
            // drops this future with it.
            std::future::pending::<()>().await;
        }
        if plan.fail {
            faults::injected("failure");
            return Err(Status::unavailable("payment failed (injected failure)"));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn process_payment(
        &self,
        request: Request<pb::ProcessPaymentRequest>,
    ) -> Result<Response<pb::ProcessPaymentResponse>, Status> {
        let plan = self.faults.plan();
        if let Err(status) = self.misbehave(plan).await {
            metrics::payment("failed");
            return Err(status);
        }
        let charge = Charge::parse(request.get_ref()).map_err(|violations| {
            metrics::payment("invalid");
            let violations = violations.into_iter().map(|v| (v.field, v.description));
            server::grpc::invalid_argument(Some("ProcessPaymentRequest"), violations)
        })?;
        let verdict = if plan.decline {
            Verdict::Decline(DECLINE_REASON.to_owned())
        } else {
            Verdict::Capture
        };

        let (payment, replayed) = match self.ledger.record(&charge, verdict).await {
            Ok(Recorded::New(payment)) => {
                if payment.status == pb::PaymentStatus::Declined as i32 {
                    faults::injected("decline");
                    metrics::payment("declined");
                } else {
                    metrics::payment("captured");
                }
                (payment, false)
            }
            Ok(Recorded::Replayed(payment)) => {
                metrics::payment("replayed");
                (payment, true)
            }
            Err(error @ LedgerError::Conflict { .. }) => {
                metrics::payment("conflict");
                return Err(Status::already_exists(error.to_string()));
            }
            Err(LedgerError::Database(error)) => {
                metrics::payment("failed");
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "ledger.write_failed"
                );
                return Err(Status::unavailable(
                    "the ledger is unavailable; retry with the same order_id",
                ));
            }
        };
        tracing::info!(
            payment_id = %payment.payment_id,
            replayed,
            status = payment.status,
            "payment.processed"
        );
        Ok(Response::new(pb::ProcessPaymentResponse {
            payment: Some(payment.to_proto()),
            replayed,
        }))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        self.misbehave(self.faults.plan()).await?;
        let order_id = OrderId::parse(&request.get_ref().order_id).map_err(|description| {
            server::grpc::invalid_argument(Some("GetPaymentRequest"), [("order_id", description)])
        })?;
        match self.ledger.get(&order_id).await {
            Ok(Some(payment)) => Ok(Response::new(pb::GetPaymentResponse {
                payment: Some(payment.to_proto()),
            })),
            Ok(None) => Err(Status::not_found(format!(
                "no payment for order `{}`",
                order_id.as_str()
            ))),
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "ledger.read_failed"
                );
                Err(Status::unavailable("the ledger is unavailable; retry"))
            }
        }
    }
}
