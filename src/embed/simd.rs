//! Run-time CPU feature detection shared by the embedding kernels.

/// Whether this CPU has AVX2 and FMA. word2vec's training thread and PMI's
/// sparse-times-dense product each have a copy compiled with
/// `#[target_feature(enable = "avx2,fma")]` (fused multiply-adds, 256-bit vectors), which may
/// only be called when this is true; both check it once, here, rather than per call. Always
/// false off x86_64, where the portable copies run.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
