//! Cost of one `ProtoState::observe` call: the worst case (a TCP or UDP
//! payload no matcher accepts, so every matcher runs), a first packet that
//! decides (a TLS ClientHello), and the fast path once the state is done
//! (what every later packet of a flow pays).
//!
//! Why: the flow table will call `observe` for every packet of every flow;
//! the budget bounds how often the full matcher set runs, this bench bounds
//! what one run costs.
//!
//! `cargo bench -p tapsentry-proto --bench observe`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tapsentry_proto::{Dir, ProtoState, TCP, UDP};

/// Bytes no matcher accepts: a pseudo-random stream (xorshift), 1200 bytes.
fn noise() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..1200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn client_hello() -> Vec<u8> {
    // Record header, ClientHello header, version 3.3, then zeros: enough for the matcher.
    let mut p = vec![0x16, 3, 1, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3];
    p.resize(517, 0);
    p
}

fn bench(c: &mut Criterion) {
    let noise = noise();
    let hello = client_hello();
    let mut g = c.benchmark_group("observe");
    g.bench_function("tcp_no_match_all_matchers", |b| {
        b.iter(|| {
            let mut st = ProtoState::new();
            black_box(st.observe(Dir::ToServer, TCP, black_box(&noise), (40000, 443)))
        })
    });
    g.bench_function("udp_no_match_all_matchers", |b| {
        b.iter(|| {
            let mut st = ProtoState::new();
            black_box(st.observe(Dir::ToServer, UDP, black_box(&noise), (40000, 443)))
        })
    });
    g.bench_function("tcp_tls_client_hello", |b| {
        b.iter(|| {
            let mut st = ProtoState::new();
            black_box(st.observe(Dir::ToServer, TCP, black_box(&hello), (40000, 443)))
        })
    });
    let mut done = ProtoState::new();
    done.observe(Dir::ToServer, TCP, &hello, (40000, 443));
    g.bench_function("done_fast_path", |b| {
        b.iter(|| {
            let mut st = black_box(done);
            black_box(st.observe(Dir::ToServer, TCP, black_box(&noise), (40000, 443)))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
