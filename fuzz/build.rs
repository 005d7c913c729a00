// Gives the fuzz binaries an rpath to libtorch (as the root build.rs does for fixclf's), so
// they run with no LD_LIBRARY_PATH. torch-sys exports its folder as DEP_TCH_LIBTORCH_LIB to
// direct dependents only, hence the torch-sys dependency.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::fs::canonicalize(&lib)
            .map(|p| p.display().to_string())
            .unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
