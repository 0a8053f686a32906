//! tapsentry: wiring of capture, decode, flow table, detectors and outputs.
