#![no_main]
// The reader and its contract: fixclf::fuzzing::checkpoint.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::checkpoint(data));
