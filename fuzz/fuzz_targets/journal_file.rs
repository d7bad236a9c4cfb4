#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iotitan::fuzz::journal_file(data));
