//! Compiles `proto/mars.proto` with protox (a protobuf compiler in Rust, so
//! building needs no `protoc` on the machine) and tonic's code generator.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/mars.proto");
    let fds = protox::compile(["proto/mars.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
