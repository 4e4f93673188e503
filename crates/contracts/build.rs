//! Compiles `proto/` with protox (pure Rust), so building needs no system `protoc`.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

/// Each contract, and the name of its descriptor set for reflection.
const PROTOS: &[(&str, &str)] = &[
    ("order/v1/order.proto", "order_v1"),
    ("payment/v1/payment.proto", "payment_v1"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    for (proto, name) in PROTOS {
        println!(
            "cargo:rerun-if-changed={}",
            proto_root.join(proto).display()
        );
        // One set per service (its file and imports), so that a server's reflection lists only
        // the services it serves. `compile_fds` ignores `file_descriptor_set_path`, hence this.
        let own = protox::compile([proto], [&proto_root])?;
        fs::write(
            out_dir.join(format!("{name}_descriptor.bin")),
            own.encode_to_vec(),
        )?;
    }

    let all = protox::compile(PROTOS.iter().map(|(proto, _)| proto), [&proto_root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(all)?;
    Ok(())
}
