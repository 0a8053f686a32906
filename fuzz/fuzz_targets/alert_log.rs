#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapsentry_fuzz::entries::alert_log(data));
