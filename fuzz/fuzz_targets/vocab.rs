#![no_main]
// The reader and its contract: fixclf::fuzzing::vocab.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::vocab(data));
