//! Compiles `proto/eos.proto` with protox (pure Rust), so no `protoc` is needed to build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/eos.proto");
    let descriptors = protox::compile(["eos.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
