//! Compiles `proto/` with protox (no system `protoc` needed) and writes the
//! encoded descriptor set that server reflection serves.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds migrations/ at compile time; without this a new
    // migration file alone would not rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let fds = protox::compile(
        ["twoplace/v1/exchange.proto", "twoplace/v1/admin.proto"],
        ["proto"],
    )?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("twoplace_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
