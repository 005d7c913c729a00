//! Which part of the data a rank takes: the LM's batch columns, PyTorch's
//! DistributedSampler order for images, and contiguous shards for evaluation. With one
//! rank every function gives the whole (the single-process run).
use crate::error::{Error, Result};

/// The share of the global batch `batch` (`train.batch_size`) each of `world` ranks
/// trains on; refused when `world` does not divide it, since the ranks' mean gradients
/// would then not average to the batch's.
pub fn per_rank_batch(batch: usize, world: usize) -> Result<usize> {
    if world == 0 || batch % world != 0 {
        return Err(Error::arg(
            "train.batch_size",
            format!(
                "{batch} is the global batch and must be divisible by the {world} ranks \
                 (each takes batch_size / ranks); use a multiple of {world}"
            ),
        ));
    }
    Ok(batch / world)
}

/// The half-open range `[lo, hi)` of `n` items that rank `rank` of `world` takes:
/// contiguous, sizes differing by at most one, earlier ranks taking the extra ones.
pub fn range(n: usize, rank: usize, world: usize) -> (usize, usize) {
    let base = n / world;
    let extra = n % world;
    let lo = rank * base + rank.min(extra);
    (lo, lo + base + usize::from(rank < extra))
}

/// PyTorch's `DistributedSampler` (no `drop_last`): the epoch's order padded to a
/// multiple of `world` by repeating its start, rank `rank` taking `order[rank::world]`.
pub fn sampler<T: Copy>(order: &[T], rank: usize, world: usize) -> Vec<T> {
    if world <= 1 || order.is_empty() {
        return order.to_vec();
    }
    let total = order.len().div_ceil(world) * world;
    (rank..total)
        .step_by(world)
        .map(|i| order[i % order.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_only_when_divisible() {
        assert_eq!(per_rank_batch(20, 2).unwrap(), 10);
        assert_eq!(per_rank_batch(20, 1).unwrap(), 20);
        let e = per_rank_batch(20, 3).unwrap_err().to_string();
        assert!(
            e.contains("train.batch_size") && e.contains("3 ranks"),
            "{e}"
        );
    }

    #[test]
    fn ranges_cover_everything_once() {
        for (n, world) in [(10, 3), (2, 4), (7, 1), (0, 2)] {
            let mut next = 0;
            for r in 0..world {
                let (lo, hi) = range(n, r, world);
                assert_eq!(lo, next);
                next = hi;
            }
            assert_eq!(next, n);
        }
        assert_eq!(range(10, 0, 3), (0, 4));
        assert_eq!(range(10, 2, 3), (7, 10));
    }

    #[test]
    fn sampler_is_pytorchs_distributed_sampler() {
        let order = [5, 3, 8, 1, 9];
        // torch.utils.data.DistributedSampler(shuffle=False) over these indices: padded
        // with the first one to 6, then [0::2] and [1::2].
        assert_eq!(sampler(&order, 0, 2), vec![5, 8, 9]);
        assert_eq!(sampler(&order, 1, 2), vec![3, 1, 5]);
        assert_eq!(sampler(&order, 0, 1), order.to_vec());
        // The ranks' k-th batches of b items together are the single process's k-th
        // batch of world x b items, when nothing is padded.
        let order: Vec<usize> = (0..12).rev().collect();
        let (r0, r1) = (sampler(&order, 0, 2), sampler(&order, 1, 2));
        let mut union: Vec<usize> = r0[2..4].iter().chain(&r1[2..4]).copied().collect();
        let mut single = order[4..8].to_vec();
        union.sort();
        single.sort();
        assert_eq!(union, single);
    }
}
