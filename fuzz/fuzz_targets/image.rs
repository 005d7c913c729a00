#![no_main]
// The reader and its contract: fixclf::fuzzing::image.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fixclf::fuzzing::image(data));
