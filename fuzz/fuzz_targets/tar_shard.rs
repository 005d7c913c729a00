#![no_main]
// The reader and its contract: fixclf::fuzzing::tar_shard.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::tar_shard(data));
