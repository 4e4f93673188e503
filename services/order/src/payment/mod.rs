//! The payment client: a tonic channel behind the resilience stack, and what its answers mean
//! for an order.
//!
//! Outermost first: deadline → retry (budgeted) → circuit breaker → bulkhead → traced tonic
//! client. The same stack (and so the same breaker) serves requests and the reconciler, so the
//! reconciler never hammers a payment service the breaker has given up on.
//!
//! The channel underneath speaks TLS (mutual, with a client certificate) when payment's URL is
//! `https://` ([`channel`], [`PaymentTls`]).

mod observer;
mod tls;

use contracts::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use resilience::{
    BoxError, ConfigError, GrpcClassifier,
    breaker::{BreakerConfig, BreakerHandle, BreakerLayer, BreakerOpen},
    bulkhead::{BulkheadConfig, BulkheadFull, BulkheadLayer},
    deadline::{DeadlineConfig, DeadlineExceeded, DeadlineLayer, WithDeadline},
    is_caused_by,
    retry::{RetryBudgetExhausted, RetryConfig, RetryLayer},
};
use telemetry::grpc::{GrpcClient, GrpcClientLayer};
use tokio::time::Instant;
use tonic::transport::Channel;
use tower::{ServiceBuilder, ServiceExt as _, util::BoxCloneSyncService};

pub use observer::{DEPENDENCY, describe};
pub use tls::{PaymentTls, channel};

use crate::domain::Order;

/// The resilience settings of the payment client, one struct per layer.
#[derive(Debug, Clone, Default)]
pub struct PaymentPolicy {
    /// Deadline of a charge: default and cap.
    pub deadline: DeadlineConfig,
    /// Retries under a budget.
    pub retry: RetryConfig,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Concurrent calls.
    pub bulkhead: BulkheadConfig,
}

/// Why a charge fell back to PAYMENT_PENDING: the `reason` of `fallback_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The breaker is open: payment is not even tried.
    BreakerOpen,
    /// The deadline passed; the charge may or may not have happened (payment's idempotency
    /// makes finding out safe).
    Deadline,
    /// Payment answered UNAVAILABLE, or could not be reached, and retries did not help.
    Unavailable,
    /// Too many calls to payment in flight already.
    BulkheadFull,
    /// Payment failed and the retry budget allowed no retry.
    BudgetExhausted,
}

impl FallbackReason {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FallbackReason::BreakerOpen => "breaker_open",
            FallbackReason::Deadline => "deadline",
            FallbackReason::Unavailable => "unavailable",
            FallbackReason::BulkheadFull => "bulkhead_full",
            FallbackReason::BudgetExhausted => "budget_exhausted",
        }
    }

    fn of(error: &BoxError) -> Self {
        if is_caused_by::<BreakerOpen>(&**error) {
            FallbackReason::BreakerOpen
        } else if is_caused_by::<BulkheadFull>(&**error) {
            FallbackReason::BulkheadFull
        } else if is_caused_by::<DeadlineExceeded>(&**error)
            || resilience::find_cause::<tonic::Status>(&**error).map(resilience::status_code)
                == Some(tonic::Code::DeadlineExceeded)
        {
            FallbackReason::Deadline
        } else if is_caused_by::<RetryBudgetExhausted>(&**error) {
            FallbackReason::BudgetExhausted
        } else {
            FallbackReason::Unavailable
        }
    }
}

/// What payment's answer means for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Charged.
    Captured,
    /// Refused for a business reason: definitive.
    Declined(String),
    /// Not known now; keep the order PAYMENT_PENDING and try again later.
    Deferred(FallbackReason),
}

type Stack = BoxCloneSyncService<
    WithDeadline<pb::ProcessPaymentRequest>,
    tonic::Response<pb::ProcessPaymentResponse>,
    BoxError,
>;

/// The payment client. Cheap to clone; clones share the breaker, bulkhead and retry budget.
#[derive(Clone)]
pub struct PaymentClient {
    stack: Stack,
    breaker: BreakerHandle,
}

impl std::fmt::Debug for PaymentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentClient")
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl PaymentClient {
    /// Wraps `channel` (connect timeout, keepalive and lazy connect are the channel's) in the
    /// resilience stack of `policy`.
    pub fn new(channel: Channel, policy: &PaymentPolicy) -> Result<Self, ConfigError> {
        let client = PaymentServiceClient::new(
            ServiceBuilder::new()
                .layer(GrpcClientLayer::new())
                .service(channel),
        );
        let breaker = BreakerLayer::try_with_observer(
            policy.breaker.clone(),
            GrpcClassifier::new(),
            observer::Breaker::new(),
        )?;
        let handle = breaker.handle();
        observer::thresholds(&policy.breaker);
        let call = tower::service_fn(move |request: WithDeadline<pb::ProcessPaymentRequest>| {
            let mut client: PaymentServiceClient<GrpcClient<Channel>> = client.clone();
            async move { client.process_payment(request.into_tonic_request()).await }
        });
        let stack = ServiceBuilder::new()
            .layer(DeadlineLayer::try_new(policy.deadline.clone())?)
            .layer(RetryLayer::try_with_observer(
                policy.retry.clone(),
                GrpcClassifier::new(),
                observer::Retry,
            )?)
            .layer(breaker)
            .layer(BulkheadLayer::try_with_observer(
                policy.bulkhead.clone(),
                observer::Bulkhead,
            )?)
            .service(call);
        Ok(Self {
            stack: BoxCloneSyncService::new(stack),
            breaker: handle,
        })
    }

    /// The breaker, for the admin API and the reconciler.
    pub fn breaker(&self) -> &BreakerHandle {
        &self.breaker
    }

    /// Charges `order` (its id is payment's idempotency key), within `deadline` if given.
    pub async fn charge(&self, order: &Order, deadline: Option<Instant>) -> Charge {
        let request = pb::ProcessPaymentRequest {
            order_id: order.order_id.clone(),
            amount: Some(pb::Money {
                amount_minor: order.total.amount_minor,
                currency_code: order.total.currency_code.clone(),
            }),
            method: pb::PaymentMethod::Card as i32,
        };
        let request = match deadline {
            Some(deadline) => WithDeadline::due_by(request, deadline),
            None => WithDeadline::new(request),
        };
        match self.stack.clone().oneshot(request).await {
            Ok(response) => match response.into_inner().payment {
                Some(payment) if payment.status() == pb::PaymentStatus::Declined => {
                    Charge::Declined(payment.decline_reason)
                }
                Some(payment) if payment.status() == pb::PaymentStatus::Captured => {
                    Charge::Captured
                }
                other => {
                    tracing::error!(payment = ?other, "payment.unexpected_answer");
                    Charge::Deferred(FallbackReason::Unavailable)
                }
            },
            Err(error) => {
                let reason = FallbackReason::of(&error);
                if reason == FallbackReason::Unavailable {
                    tracing::warn!(error = &*error as &dyn std::error::Error, "payment.failed");
                }
                Charge::Deferred(reason)
            }
        }
    }
}
