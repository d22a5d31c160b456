//! Compiles `proto/rustyray.proto` with a pure-Rust protobuf compiler, so
//! building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/rustyray.proto");
    let descriptors = protox::compile(["proto/rustyray.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
