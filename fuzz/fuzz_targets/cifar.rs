#![no_main]
// The reader and its contract: fixclf::fuzzing::cifar.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::cifar(data));
