//! Compiles the repository's `proto/*.proto` (DTM's gRPC API and its workflow callback) into
//! Rust with prost and tonic. The `.proto` files are parsed by protox, a pure-Rust protobuf
//! compiler, so building needs no `protoc` on the machine and downloads nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("dtmgimp.proto"), root.join("workflow.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Malformed requests are INVALID_ARGUMENT, not prost's INTERNAL.
        .codec_path("crate::grpc::codec::StrictCodec")
        .compile_fds(fds)?;
    Ok(())
}
