#![no_main]
// The reader and its contract: fixclf::fuzzing::npy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::npy(data));
