#![no_main]
// The reader and its contract: fixclf::fuzzing::token_cache.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::token_cache(data));
