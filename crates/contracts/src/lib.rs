//! Stormproof's gRPC contracts, generated from `proto/` at build time.
//!
//! - [`order::v1`]: `stormproof.order.v1.OrderService`, the shop's public API.
//! - [`payment::v1`]: `stormproof.payment.v1.PaymentService`, which order calls.
//! - [`FILE_DESCRIPTOR_SET`]: both files (and their imports), for gRPC server reflection.
//!
//! The protos are compiled by protox, a protobuf compiler written in Rust, so a build needs no
//! system `protoc`.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

/// The encoded `FileDescriptorSet` of every contract, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("stormproof_descriptor");

/// `stormproof.order.*`
pub mod order {
    /// `stormproof.order.v1`
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("stormproof.order.v1");
    }
}

/// `stormproof.payment.*`
pub mod payment {
    /// `stormproof.payment.v1`
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("stormproof.payment.v1");
    }
}
