//! The binary launched as the ranks of one data-parallel run, with the variables torchrun
//! sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), over
//! loopback, on a port found by binding port 0.
use super::runs::{finish, BIN};
use std::process::{Child, Command, Output, Stdio};

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `world` ranks of `fixclf <args>` as torchrun starts them, stdout going where `stdout`
/// says, stderr piped.
fn start(args: &[&str], world: usize, env: &[(&str, &str)], stdout: fn() -> Stdio) -> Vec<Child> {
    let port = free_port().to_string();
    (0..world)
        .map(|rank| {
            Command::new(BIN)
                .args(args)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("LOCAL_WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .envs(env.iter().copied())
                .stdout(stdout())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start fixclf")
        })
        .collect()
}

/// Starts `world` ranks of `fixclf <args>` (stdout discarded).
pub fn launch(args: &[&str], world: usize, env: &[(&str, &str)]) -> Vec<Child> {
    start(args, world, env, Stdio::null)
}

/// Runs `world` ranks to the end; (exit code, stderr) of each.
pub fn run_ranks(args: &[&str], world: usize, env: &[(&str, &str)]) -> Vec<(i32, String)> {
    launch(args, world, env).into_iter().map(finish).collect()
}

/// Runs `world` ranks to the end; (exit code, stdout, stderr) of each.
pub fn run_ranks_output(
    args: &[&str],
    world: usize,
    env: &[(&str, &str)],
) -> Vec<(i32, String, String)> {
    start(args, world, env, Stdio::piped)
        .into_iter()
        .map(|c| {
            let o: Output = c.wait_with_output().unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .collect()
}
