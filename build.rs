// Gives the fixclf binaries an rpath to libtorch so they run with no LD_LIBRARY_PATH, and
// compiles csrc/fixclf_native.cpp (what tch does not bind: `_foreach_*`, TF32, autocast, and
// with the `cuda` feature CUDA graphs) against the same libtorch's headers.
// torch-sys exports the folder it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"`).
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-changed=csrc/fixclf_native.cpp");
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB); run `make` or scripts/setup-libtorch.sh");
    };
    // Resolve the .libtorch link so the rpath names the cache folder itself.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| PathBuf::from(&lib));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let torch = lib.parent().expect("libtorch's lib folder has a parent");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!(
            "-D_GLIBCXX_USE_CXX11_ABI={}",
            std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into())
        ))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/fixclf_native.cpp");
    if cuda {
        let Some(include) = cuda_include(torch) else {
            panic!(
                "the cuda feature needs the CUDA runtime headers (cuda_runtime_api.h): install the \
                 full torch wheel (FIXCLF_TORCH_FULL=1 scripts/setup-libtorch.sh, which brings \
                 nvidia/cu*/include) or set CUDA_HOME"
            );
        };
        build.include(include).define("FIXCLF_CUDA", None);
    }
    build.compile("fixclf_native");
    // With the default --as-needed the linker drops libtorch_cuda.so, since no symbol of it
    // is referenced directly, and CUDA then looks unavailable (tch-rs#980).
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The folder holding cuda_runtime_api.h: $CUDA_HOME/include, the wheel's
/// site-packages/nvidia/*/include (the torch wheel's CUDA runtime package), /usr/local/cuda.
fn cuda_include(torch: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    if let Some(site) = torch.parent() {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join("include"))
                .collect();
            dirs.sort();
            candidates.extend(dirs);
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        .find(|dir| dir.join("cuda_runtime_api.h").is_file())
}
