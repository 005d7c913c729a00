#![no_main]
// The reader and its contract: fixclf::fuzzing::summary.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::summary(data));
