//! Stormproof's gRPC contracts, generated from `proto/` at build time.
//!
//! - [`order::v1`]: `stormproof.order.v1.OrderService`, the shop's public API.
//! - [`payment::v1`]: `stormproof.payment.v1.PaymentService`, which order calls.
//!
//! Each version module has its `FILE_DESCRIPTOR_SET` (its file and imports), for gRPC server
//! reflection: a server registers the sets of the services it serves, and lists only those.
//!
//! The protos are compiled by protox, a protobuf compiler written in Rust, so a build needs no
//! system `protoc`.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

/// `stormproof.order.*`
pub mod order {
    /// `stormproof.order.v1`
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("stormproof.order.v1");

        /// The encoded `FileDescriptorSet` of `order.proto`, for `tonic-reflection`.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("order_v1_descriptor");
    }
}

/// `stormproof.payment.*`
pub mod payment {
    /// `stormproof.payment.v1`
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("stormproof.payment.v1");

        /// The encoded `FileDescriptorSet` of `payment.proto`, for `tonic-reflection`.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("payment_v1_descriptor");
    }
}
