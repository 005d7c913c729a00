// Gives the fixclf binaries an rpath to libtorch so they run with no LD_LIBRARY_PATH.
// torch-sys exports the folder it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"`).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // Resolve the .libtorch link so the rpath names the cache folder itself.
        let lib = std::fs::canonicalize(&lib)
            .map(|p| p.display().to_string())
            .unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    // With the default --as-needed the linker drops libtorch_cuda.so, since no symbol of it
    // is referenced directly, and CUDA then looks unavailable (tch-rs issue 980).
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
