#![no_main]
// The reader and its contract: fixclf::fuzzing::tokenizer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::tokenizer(data));
