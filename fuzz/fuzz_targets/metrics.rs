#![no_main]
// The reader and its contract: fixclf::fuzzing::metrics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::metrics(data));
