fn main() {
    napi_build::setup();
    // A CUDA build links the static CUDA runtime (scripts/cuda-toolchain.mjs puts a folder holding only
    // libcudart.a here), so the addon loads on machines without libcudart.so; the driver and cuBLAS are
    // opened at run time.
    println!("cargo:rerun-if-env-changed=EMBEDDING_SERVICE_CUDART_DIR");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        if let Some(dir) = std::env::var_os("EMBEDDING_SERVICE_CUDART_DIR") {
            println!("cargo:rustc-link-search=native={}", std::path::Path::new(&dir).display());
        }
    }
}
