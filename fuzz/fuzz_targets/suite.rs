#![no_main]
// The reader and its contract: fixclf::fuzzing::suite.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::suite(data));
