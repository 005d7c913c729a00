//! The collectives between real processes: the test binary runs itself as each rank (the
//! `worker` tests below do nothing unless `FIXCLF_DIST_WORKER` names them), over loopback,
//! on a port found by binding port 0.
use super::*;
use serial_test::serial;
use std::process::{Command, Output};
use tch::{Kind, Tensor};

const WORKER: &str = "FIXCLF_DIST_WORKER";

/// A port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs test `name` of this binary as ranks `0..world` of one launch (the `RANK` ... env),
/// and waits for all of them.
fn launch(name: &str, world: usize, extra: &[(&str, &str)]) -> Vec<Output> {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            let mut c = Command::new(&exe);
            c.args([
                "--exact",
                &format!("distributed::tests::{name}"),
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(WORKER, name)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("OMP_NUM_THREADS", "1");
            for (k, v) in extra {
                c.env(k, v);
            }
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The group of this worker, or None when the test runs as itself (not as a rank).
fn worker_group(name: &str, timeout_s: f64) -> Option<ProcessGroup> {
    if std::env::var(WORKER).ok().as_deref() != Some(name) {
        return None;
    }
    let launch = Launch::from_env().unwrap().unwrap();
    let settings = GroupSettings {
        timeout_s,
        // Small buckets: the lists below span several.
        bucket_bytes: 64,
        nccl_device: None,
        overlap: false,
    };
    Some(ProcessGroup::new(&launch, &settings).unwrap())
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

#[test]
fn worker_collectives() {
    let Some(g) = worker_group("worker_collectives", 20.0) else {
        return;
    };
    let r = g.rank as f64;
    // Mixed sizes and kinds, one larger than a bucket, a non-contiguous view.
    let a = Tensor::full([3, 7], r + 1.0, (Kind::Float, tch::Device::Cpu));
    let b = Tensor::from_slice(&[r, 10.0 * r]);
    let c = Tensor::from_slice(&[r * 0.5]).to_kind(Kind::Double);
    let big = Tensor::zeros([4, 6], (Kind::Float, tch::Device::Cpu));
    let col = big.select(1, 2);
    let _ = col.shallow_clone().fill_(r + 2.0);
    g.all_reduce("test", Lane::Data, &[&a, &b, &c, &col], 0.5)
        .unwrap();
    // Mean over ranks 0 and 1.
    assert!(values(&a).iter().all(|&v| v == 1.5), "{:?}", values(&a));
    assert_eq!(values(&b), vec![0.5, 5.0]);
    assert_eq!(values(&c), vec![0.25]);
    assert_eq!(values(&big.select(1, 2)), vec![2.5; 4]);
    assert_eq!(values(&big.select(1, 0)), vec![0.0; 4]);
    let p = Tensor::from_slice(&[r, r, r]);
    g.broadcast("test", Lane::Data, &[&p], 1).unwrap();
    assert_eq!(values(&p), vec![1.0; 3]);
    assert_eq!(g.sum_i64("test", &[1, g.rank as i64]).unwrap(), vec![2, 1]);
    assert_eq!(g.sum_f64("test", &[0.25]).unwrap(), vec![0.5]);
    g.barrier("test").unwrap();
    sync::check_same(&g, "value", 42, "fix").unwrap();
    let e = sync::check_same(&g, "value", g.rank as i64, "fix it").unwrap_err();
    assert!(e.to_string().contains("of 1 of 2 ranks differ"), "{e}");
    assert!(sync::agree(&g, "x", true, "").unwrap());
    let e = sync::agree(&g, "x", g.rank == 0, "fix")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("rank {}", g.rank)) && e.contains("1 of 2"),
        "{e}"
    );
    println!("rank {} ok", g.rank);
}

#[test]
#[serial(distributed)]
fn collectives_are_correct_between_two_processes() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let out = launch("worker_collectives", 2, &[]);
    for (rank, o) in out.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}: {}", text(o));
        assert!(text(o).contains(&format!("rank {rank} ok")), "{}", text(o));
    }
}

#[test]
fn worker_dead_peer() {
    let Some(g) = worker_group("worker_dead_peer", 3.0) else {
        return;
    };
    g.barrier("start").unwrap();
    if g.rank == 1 {
        // Dies as a killed rank does: no goodbye.
        unsafe { libc::_exit(9) };
    }
    let t = Tensor::ones([1000], (Kind::Float, tch::Device::Cpu));
    let e = g
        .all_reduce("gradients", Lane::Data, &[&t], 0.5)
        .unwrap_err();
    println!("dead peer error: {e}");
}

#[test]
#[serial(distributed)]
fn a_dead_peer_is_an_error_naming_rank_and_operation_not_a_hang() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let start = std::time::Instant::now();
    let out = launch("worker_dead_peer", 2, &[]);
    assert_eq!(out[1].status.code(), Some(9));
    let t = text(&out[0]);
    assert!(out[0].status.success(), "{t}");
    let line = t.lines().find(|l| l.contains("dead peer error")).unwrap();
    assert!(
        line.contains("rank 0: all-reduce of gradients: ") && line.contains("timeout_s = 3"),
        "{line}"
    );
    assert!(start.elapsed().as_secs() < 60);
}

#[test]
#[serial(distributed)]
fn an_unreachable_store_is_an_error_within_the_timeout() {
    let launch = Launch {
        rank: 1,
        world_size: 2,
        local_rank: 1,
        local_world_size: 2,
        master_addr: "127.0.0.1".into(),
        master_port: free_port(),
        agent_store: false,
        restart_count: 0,
        gloo_ifname: None,
    };
    let settings = GroupSettings {
        timeout_s: 1.0,
        bucket_bytes: 1 << 20,
        nccl_device: None,
        overlap: false,
    };
    let start = std::time::Instant::now();
    let e = match ProcessGroup::new(&launch, &settings) {
        Ok(_) => panic!("joined a group nobody hosts"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("rank 1: joining the process group"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
}

#[test]
fn worker_agent_store() {
    let Some(g) = worker_group("worker_agent_store", 20.0) else {
        return;
    };
    let t = Tensor::from_slice(&[g.rank as f32 + 1.0]);
    g.all_reduce("test", Lane::Data, &[&t], 1.0).unwrap();
    assert_eq!(values(&t), vec![3.0]);
    g.barrier("end").unwrap();
    println!("rank {} ok", g.rank);
}

/// Every rank a client of a store that another process hosts (torchrun's agent), and a
/// second group (a restart) on the same store under the next restart count.
#[test]
#[serial(distributed)]
fn ranks_join_through_an_agent_store_and_again_after_a_restart() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let host = group::StoreHost::new(0, 20.0).unwrap();
    assert!(host.port > 0);
    let port = host.port.to_string();
    for restart in ["0", "1"] {
        let env = [
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", restart),
            ("MASTER_PORT", port.as_str()),
        ];
        let out = launch("worker_agent_store", 2, &env);
        for (rank, o) in out.iter().enumerate() {
            assert!(
                o.status.success(),
                "restart {restart}, rank {rank}: {}",
                text(o)
            );
        }
    }
}

#[test]
fn worker_rank0() {
    // A timeout shorter than the work: the waiting ranks never sit in one collective
    // for the whole of it.
    let Some(g) = worker_group("worker_rank0", 2.0) else {
        return;
    };
    let r = g.rank as i64;
    let asked = std::cell::Cell::new(false);
    let got = rank0::choice_in(&g, "test", || {
        asked.set(true);
        Ok(40 + r)
    });
    assert_eq!(got.unwrap(), 40);
    assert_eq!(asked.get(), g.rank == 0, "only rank 0 decides");
    let e = rank0::choice_in(&g, "a choice", || Err(crate::Error::arg("x", "bad")))
        .unwrap_err()
        .to_string();
    let expected = if g.rank == 0 {
        "x: bad".to_string()
    } else {
        "rank 1: a choice: rank 0 failed".to_string()
    };
    assert!(e.starts_with(&expected), "{e}");
    let start = std::time::Instant::now();
    let out = rank0::work_in(&g, "test work", || {
        std::thread::sleep(std::time::Duration::from_secs(5));
        Ok(7)
    })
    .unwrap();
    assert!(start.elapsed().as_secs_f64() > 4.0);
    assert_eq!(out, (g.rank == 0).then_some(7));
    let e = rank0::work_in(&g, "failing work", || -> crate::Result<()> {
        Err(crate::Error::arg("y", "broken"))
    })
    .unwrap_err()
    .to_string();
    let expected = if g.rank == 0 {
        "y: broken".to_string()
    } else {
        "rank 1: failing work: rank 0 failed".to_string()
    };
    assert!(e.starts_with(&expected), "{e}");
    g.barrier("end").unwrap();
    println!("rank {} ok", g.rank);
}

/// Rank 0's choice reaches every rank (its failure too, at once), and work longer than
/// the group's timeout done by rank 0 alone is waited for.
#[test]
#[serial(distributed)]
fn rank0_decides_and_works_while_the_others_wait() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let out = launch("worker_rank0", 2, &[]);
    for (rank, o) in out.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}: {}", text(o));
        assert!(text(o).contains(&format!("rank {rank} ok")), "{}", text(o));
    }
}

#[test]
fn worker_sync_batch_norm() {
    let Some(g) = worker_group("worker_sync_batch_norm", 20.0) else {
        return;
    };
    use super::sync_bn::tests::{gap, layer, reference, step};
    // The same global batch and layer on both ranks; uneven shares (3 and 5 images) weigh
    // each rank's statistics by its count.
    tch::manual_seed(11);
    let x = Tensor::randn([8, 4, 3, 3], (Kind::Float, tch::Device::Cpu)) * 2.0 + 1.0;
    let r = Tensor::randn([8, 4, 3, 3], (Kind::Float, tch::Device::Cpu));
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let synced = layer(&vs, 4, true, Kind::Float);
    let mut full_vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let full = layer(&full_vs, 4, false, Kind::Float);
    full_vs.copy(&vs).unwrap();
    let (lo, n) = if g.rank == 0 { (0, 3) } else { (3, 5) };
    let (xs, rs) = (x.narrow(0, lo, n), r.narrow(0, lo, n));
    let a = step(&synced, &xs, &rs, |x| synced.forward_synced(Some(&g), x));
    let b = step(&full, &x, &r, |x| reference(&full, x));
    sync_bn::failure(&g).unwrap();
    // This rank's rows of the global batch's output and input gradient.
    for (i, what) in [(0, "y"), (1, "dx")] {
        let e = gap(&a[i], &b[i].narrow(0, lo, n));
        assert!(e <= 1e-6, "rank {}: {what} {e}", g.rank);
    }
    // The weight and bias gradients are local: summed over the ranks (as the gradient
    // all-reduce does) they are the global batch's. The running statistics are global.
    g.all_reduce("test", Lane::Data, &[&a[2], &a[3]], 1.0)
        .unwrap();
    for (i, what) in [
        (2, "dweight"),
        (3, "dbias"),
        (4, "running_mean"),
        (5, "running_var"),
    ] {
        let e = gap(&a[i], &b[i]);
        assert!(e <= 1e-6, "rank {}: {what} {e}", g.rank);
    }
    println!("rank {} ok", g.rank);
}

/// Two ranks, each with its share of one global batch, compute the single process's
/// BatchNorm on the whole batch: output, input gradient, the sum of the weight and bias
/// gradients, running statistics.
#[test]
#[serial(distributed)]
fn sync_batch_norm_on_two_ranks_is_the_global_batchs() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let out = launch("worker_sync_batch_norm", 2, &[]);
    for (rank, o) in out.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}: {}", text(o));
        assert!(text(o).contains(&format!("rank {rank} ok")), "{}", text(o));
    }
}

#[test]
fn worker_sync_batch_norm_dead_peer() {
    let Some(g) = worker_group("worker_sync_batch_norm_dead_peer", 3.0) else {
        return;
    };
    g.barrier("start").unwrap();
    if g.rank == 1 {
        unsafe { libc::_exit(9) };
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let l = super::sync_bn::tests::layer(&vs, 2, true, Kind::Float);
    let x = Tensor::randn([4, 2, 3, 3], (Kind::Float, tch::Device::Cpu));
    let y = l.forward_synced(Some(&g), &x);
    assert_eq!(y.size(), x.size());
    // Once failed, a layer skips its collective: no second timeout.
    let start = std::time::Instant::now();
    let _ = l.forward_synced(Some(&g), &x);
    assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
    let e = sync_bn::failure(&g).unwrap_err();
    println!("dead peer error: {e}");
}

#[test]
#[serial(distributed)]
fn a_dead_peer_in_sync_batch_norm_is_an_error_not_a_hang() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let start = std::time::Instant::now();
    let out = launch("worker_sync_batch_norm_dead_peer", 2, &[]);
    assert_eq!(out[1].status.code(), Some(9));
    let t = text(&out[0]);
    assert!(out[0].status.success(), "{t}");
    let line = t.lines().find(|l| l.contains("dead peer error")).unwrap();
    assert!(
        line.contains("rank 0: all-reduce of BatchNorm statistics (forward pass): ")
            && line.contains("timeout_s = 3"),
        "{line}"
    );
    assert!(start.elapsed().as_secs() < 60);
}
