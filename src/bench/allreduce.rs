//! `fixclf bench allreduce`: the gradient all-reduce alone, between the ranks of a launch
//! (torchrun's variables), for given numbers of float32 values: the ranks meet at a barrier
//! before each all-reduce, so the time is the transfer's, not the wait for a slower rank.
//! One JSON line per size, printed by rank 0.
use crate::distributed::{self, DistributedConfig, Lane};
use crate::error::{Error, Result};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// `fixclf bench allreduce`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AllreduceArgs {
    /// Comma-separated numbers of float32 values (default: the paper-size LM's gradients
    /// with a learned, tied and fixed-orthogonal head).
    #[arg(long, default_value = "38312446,21274110,4235775")]
    pub floats: String,
    /// Timed all-reduces per size (after one warm-up).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Bucket size in MB (as `distributed.bucket_mb`).
    #[arg(long, default_value_t = 25.0)]
    pub bucket_mb: f64,
}

/// Times `repeats` all-reduces (after one warm-up) of each size in `--floats`, in buckets
/// of `--bucket-mb`; returns rank 0's JSON lines (nothing on the other ranks).
pub fn run(args: &AllreduceArgs) -> Result<Vec<String>> {
    let floats = crate::bench::parse_counts("--floats", &args.floats)?;
    let (repeats, bucket_mb) = (args.repeats, args.bucket_mb);
    let cfg = DistributedConfig {
        bucket_mb,
        ..Default::default()
    };
    cfg.validate("--bucket-mb")?;
    let Some(group) = distributed::init_from_env(&cfg, Device::Cpu)? else {
        return Err(Error::arg(
            "fixclf bench allreduce",
            "runs between ranks: launch it with torchrun or scripts/ranks.sh",
        ));
    };
    let mut lines = Vec::new();
    for &n in &floats {
        let t = Tensor::ones([n], (Kind::Float, Device::Cpu));
        let mut ms = Vec::with_capacity(repeats);
        for i in 0..=repeats {
            group.barrier("before an all-reduce")?;
            let start = Instant::now();
            group.all_reduce("the benchmark's values", Lane::Data, &[&t], 1.0)?;
            if i > 0 {
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        let median = ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN);
        lines.push(format!(
            "{{\"bench\":\"allreduce\",\"ranks\":{},\"floats\":{n},\"mb\":{:.1},\"buckets_mb\":{bucket_mb},\
             \"median_ms\":{median:.2},\"min_ms\":{:.2},\"repeats\":{repeats}}}",
            group.world_size,
            n as f64 * 4.0 / 1e6,
            ms.first().copied().unwrap_or(f64::NAN),
        ));
    }
    Ok(if group.rank == 0 { lines } else { Vec::new() })
}
