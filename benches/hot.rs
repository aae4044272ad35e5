//! Micro-benchmarks of the per-byte paths: hub fan-out, the in-band lock
//! codec, line framing and the pattern checker. `cargo bench --bench hot`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serialhub::endpoint::framing::LineAssembler;
use serialhub::endpoint::inband::InbandParser;
use serialhub::hub::{Hub, HubConfig, SlowReaderPolicy};
use serialhub::pattern::{Checker, Generator};

fn fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("hub_publish_4KiB");
    let chunk = Bytes::from(Generator::new().take(4096));
    for clients in [1usize, 16, 256, 1024] {
        let (hub, _writes) = Hub::new(HubConfig {
            client_queue: 1 << 20,
            // Drop keeps the queues from closing; they are drained below.
            slow_reader: SlowReaderPolicy::Drop,
            write_budget: 4096,
            write_chunk: 1024,
            max_inflight: Duration::from_secs(1),
            client_queue_fixed: true,
            paced: true,
            lock_idle: Duration::from_secs(5),
            lock_max: Duration::from_secs(600),
            txn: None,
            keep_settings: false,
            // A port's default: every chunk is also kept for viewers that join.
            scrollback: 64 << 10,
        });
        let handles: Vec<_> = (0..clients)
            .map(|i| hub.attach(format!("bench#{i}")))
            .collect();
        g.throughput(Throughput::Bytes((4096 * clients) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(clients), &clients, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    hub.publish(chunk.clone()).await;
                    for h in &handles {
                        black_box(h.next_output().await);
                    }
                })
            })
        });
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let data = Generator::new().take(64 * 1024);
    let mut g = c.benchmark_group("codec_64KiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("inband_parser", |b| {
        b.iter(|| black_box(InbandParser::default().feed(black_box(&data))))
    });
    g.bench_function("line_assembler", |b| {
        b.iter(|| black_box(LineAssembler::new(b'\n', 1024).push(black_box(&data))))
    });
    g.bench_function("pattern_checker", |b| {
        b.iter(|| {
            let mut c = Checker::new();
            c.feed(black_box(&data));
            black_box(c.records)
        })
    });
    g.finish();
}

criterion_group!(benches, fan_out, codecs);
criterion_main!(benches);
