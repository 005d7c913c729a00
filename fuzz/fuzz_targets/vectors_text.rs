#![no_main]
// The reader and its contract: fixclf::fuzzing::vectors_text.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::vectors_text(data));
