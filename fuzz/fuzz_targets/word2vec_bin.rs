#![no_main]
// The reader and its contract: fixclf::fuzzing::word2vec_bin.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::word2vec_bin(data));
