#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapsentry_fuzz::entries::admin_inspect(data));
