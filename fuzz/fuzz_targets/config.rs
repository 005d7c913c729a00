#![no_main]
// The reader and its contract: fixclf::fuzzing::config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::config(data));
