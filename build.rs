// Gives the fixclf binaries an rpath to libtorch so they run with no LD_LIBRARY_PATH, and
// compiles csrc/fixclf_native.cpp (what tch does not bind: `_foreach_*`, TF32, autocast, and
// with the `cuda` feature CUDA graphs), csrc/fixclf_dist.cpp (c10d's TCPStore and process
// groups, for data-parallel training), csrc/fixclf_sync_bn.cpp (synchronized BatchNorm, an
// autograd function with collectives on those groups) and csrc/fixclf_reducer.cpp (c10d's
// Reducer: the all-reduce overlapped with the backward pass) against the same libtorch's
// headers.
// It also compiles csrc/fixclf_jpeg.c against libjpeg-turbo, linked statically from Debian's
// libjpeg62-turbo-dev (the build inside Debian's Pillow, so JPEG pixels are Pillow's).
// torch-sys exports the folder it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"`).
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-changed=csrc/fixclf_native.cpp");
    println!("cargo:rerun-if-changed=csrc/fixclf_dist.cpp");
    println!("cargo:rerun-if-changed=csrc/fixclf_dist.h");
    println!("cargo:rerun-if-changed=csrc/fixclf_sync_bn.cpp");
    println!("cargo:rerun-if-changed=csrc/fixclf_reducer.cpp");
    println!("cargo:rerun-if-env-changed=FIXCLF_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=NCCL_HOME");
    compile_jpeg();
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB); run `make` or scripts/setup-libtorch.sh");
    };
    // Resolve the .libtorch link so the rpath names the cache folder itself.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| PathBuf::from(&lib));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let torch = lib.parent().expect("libtorch's lib folder has a parent");
    let mut build = torch_build(torch);
    build.file("csrc/fixclf_native.cpp");
    let cuda_headers = if cuda {
        let Some(include) = cuda_include(torch) else {
            panic!(
                "the cuda feature needs the CUDA runtime headers (cuda_runtime_api.h): install the \
                 full torch wheel (FIXCLF_TORCH_FULL=1 scripts/setup-libtorch.sh, which brings \
                 nvidia/cu*/include) or set CUDA_HOME"
            );
        };
        build.include(&include).define("FIXCLF_CUDA", None);
        Some(include)
    } else {
        None
    };
    build.compile("fixclf_native");
    compile_dist(torch, cuda_headers.as_deref());
    // With the default --as-needed the linker drops libtorch_cuda.so, since no symbol of it
    // is referenced directly, and CUDA then looks unavailable (tch-rs#980).
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// A C++ build against libtorch's headers, in its ABI.
fn torch_build(torch: &Path) -> cc::Build {
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
        .flag("-DGLOG_USE_GLOG_EXPORT");
    build
}

/// csrc/fixclf_jpeg.c and libjpeg-turbo's static library: Debian's libjpeg62-turbo-dev
/// (scripts/setup-debian.sh, run by `make setup`), or FIXCLF_JPEG_INCLUDE / FIXCLF_JPEG_LIB
/// naming the folders of jpeglib.h and libjpeg.a.
fn compile_jpeg() {
    println!("cargo:rerun-if-changed=csrc/fixclf_jpeg.c");
    println!("cargo:rerun-if-env-changed=FIXCLF_JPEG_INCLUDE");
    println!("cargo:rerun-if-env-changed=FIXCLF_JPEG_LIB");
    let folder = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let include = folder("FIXCLF_JPEG_INCLUDE", "/usr/include");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let lib = folder("FIXCLF_JPEG_LIB", &format!("/usr/lib/{arch}-linux-gnu"));
    for file in [include.join("jpeglib.h"), lib.join("libjpeg.a")] {
        if !file.is_file() {
            panic!(
                "libjpeg-turbo is missing ({}): run `make setup` (it installs Debian's \
                 libjpeg62-turbo-dev through scripts/setup-debian.sh) or set \
                 FIXCLF_JPEG_INCLUDE and FIXCLF_JPEG_LIB",
                file.display()
            );
        }
    }
    cc::Build::new()
        .file("csrc/fixclf_jpeg.c")
        .include(&include)
        .pic(true)
        .opt_level(2)
        .compile("fixclf_jpeg");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=static=jpeg");
}

/// csrc/fixclf_dist.cpp: c10d's ProcessGroupGloo.hpp includes gloo's headers, which the
/// torch wheel lacks (libtorch_cpu has gloo compiled in); Debian's libgloo-dev provides them
/// (scripts/setup-debian.sh, run by `make setup`). The shim only passes gloo objects around
/// as the pointers libtorch's own factories return, so the older headers' layouts never
/// meet libtorch's gloo. NCCL (the `cuda` feature) needs nccl.h from the full install's
/// nvidia-nccl wheel.
fn compile_dist(torch: &Path, cuda_headers: Option<&Path>) {
    let gloo = std::env::var_os("FIXCLF_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    if !gloo.join("gloo/algorithm.h").is_file() {
        panic!(
            "gloo's headers are missing ({}/gloo/algorithm.h): run `make setup` (it installs \
             Debian's libgloo-dev through scripts/setup-debian.sh) or set FIXCLF_GLOO_INCLUDE",
            gloo.display()
        );
    }
    let mut build = torch_build(torch);
    build
        .include(&gloo)
        .define("USE_C10D_GLOO", None)
        .file("csrc/fixclf_dist.cpp")
        .file("csrc/fixclf_sync_bn.cpp")
        .file("csrc/fixclf_reducer.cpp");
    if let Some(cuda) = cuda_headers {
        build.include(cuda);
        if let Some(nccl) = nccl_include(torch) {
            build
                .include(nccl)
                .define("USE_C10D_NCCL", None)
                .define("FIXCLF_NCCL", None);
        } else {
            println!(
                "cargo:warning=nccl.h not found (the full install's nvidia/nccl/include): \
                 distributed training on CUDA is off in this build"
            );
        }
    }
    build.compile("fixclf_dist");
}

/// The nvidia-nccl wheel's include folder beside the full torch install (or $NCCL_HOME).
fn nccl_include(torch: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("NCCL_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    if let Some(site) = torch.parent() {
        candidates.push(site.join("nvidia/nccl/include"));
    }
    candidates.into_iter().find(|d| d.join("nccl.h").is_file())
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
