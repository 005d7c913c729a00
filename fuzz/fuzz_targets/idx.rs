#![no_main]
// The reader and its contract: fixclf::fuzzing::idx.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::idx(data));
