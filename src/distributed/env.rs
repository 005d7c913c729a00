//! The launch, as torchrun (or any launcher setting the same variables) describes it in the
//! environment: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE`, `TORCHELASTIC_RESTART_COUNT`,
//! `TORCHELASTIC_RUN_ID`, `GLOO_SOCKET_IFNAME`. Without `RANK` and `WORLD_SIZE` the process
//! runs alone and nothing here is used.
use crate::error::{Error, Result};

/// Where this process stands in a data-parallel launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    /// The store's host and port (torchrun: its agent's store; else rank 0 hosts it).
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the store: every rank is a client of it.
    pub agent_store: bool,
    /// How often torchrun restarted the group; the store's keys are prefixed with it, so a
    /// restarted group does not meet the keys of the failed one.
    pub restart_count: usize,
    /// `GLOO_SOCKET_IFNAME`: the network interface Gloo uses.
    pub gloo_ifname: Option<String>,
}

impl Launch {
    /// The launch described by the process's environment, None when it runs alone.
    pub fn from_env() -> Result<Option<Launch>> {
        Launch::parse(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), from any lookup (tests).
    pub fn parse(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let (Some(rank), Some(world)) = (var("RANK"), var("WORLD_SIZE")) else {
            if let Some(k) = ["RANK", "WORLD_SIZE"]
                .into_iter()
                .find(|k| var(k).is_some())
            {
                return Err(env_error(
                    k,
                    "is set but RANK and WORLD_SIZE must come together (launch with torchrun, \
                     or set both)",
                ));
            }
            return Ok(None);
        };
        let number = |key: &str, text: &str| -> Result<usize> {
            text.trim()
                .parse::<usize>()
                .map_err(|_| env_error(key, &format!("`{text}` is not a non-negative integer")))
        };
        let rank = number("RANK", &rank)?;
        let world_size = number("WORLD_SIZE", &world)?;
        if world_size == 0 || rank >= world_size {
            return Err(env_error(
                "RANK",
                &format!("{rank} with WORLD_SIZE {world_size}: need 0 <= RANK < WORLD_SIZE"),
            ));
        }
        let local_rank = var("LOCAL_RANK")
            .map(|v| number("LOCAL_RANK", &v))
            .transpose()?
            .unwrap_or(rank);
        let local_world_size = var("LOCAL_WORLD_SIZE")
            .map(|v| number("LOCAL_WORLD_SIZE", &v))
            .transpose()?
            .unwrap_or(world_size);
        let master_addr = var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port_text = var("MASTER_PORT").ok_or_else(|| {
            env_error(
                "MASTER_PORT",
                "is not set: the port of the rank-0 (or torchrun agent) store is needed",
            )
        })?;
        let master_port = port_text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| env_error("MASTER_PORT", &format!("`{port_text}` is not a port")))?;
        let restart_count = var("TORCHELASTIC_RESTART_COUNT")
            .map(|v| number("TORCHELASTIC_RESTART_COUNT", &v))
            .transpose()?
            .unwrap_or(0);
        Ok(Some(Launch {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
            restart_count,
            gloo_ifname: var("GLOO_SOCKET_IFNAME").filter(|s| !s.is_empty()),
        }))
    }

    /// The store prefix of this attempt (torch.distributed's own for the agent store).
    pub fn store_prefix(&self) -> String {
        format!("/worker/attempt_{}/fixclf/", self.restart_count)
    }

    /// Whether the store's host is this machine's loopback (Gloo then binds there too).
    pub fn is_loopback(&self) -> bool {
        let a = self.master_addr.as_str();
        a == "localhost" || a == "::1" || a.starts_with("127.")
    }
}

fn env_error(key: &str, msg: &str) -> Error {
    Error::arg(format!("environment variable {key}"), msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<Launch>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::parse(|k| m.get(k).cloned())
    }

    #[test]
    fn no_variables_is_a_single_process() {
        assert_eq!(parse(&[]).unwrap(), None);
    }

    #[test]
    fn torchrun_variables_are_read() {
        let l = parse(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((l.rank, l.world_size, l.local_rank), (3, 4, 1));
        assert_eq!((l.local_world_size, l.master_port), (2, 29500));
        assert!(l.agent_store && !l.is_loopback());
        assert_eq!(l.store_prefix(), "/worker/attempt_2/fixclf/");
    }

    #[test]
    fn bad_variables_name_themselves() {
        let e = parse(&[("RANK", "0")]).unwrap_err().to_string();
        assert!(e.contains("RANK") && e.contains("together"), "{e}");
        let e = parse(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK") && e.contains("< WORLD_SIZE"), "{e}");
        let e = parse(&[("RANK", "0"), ("WORLD_SIZE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MASTER_PORT"), "{e}");
        let e = parse(&[("RANK", "x"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK") && e.contains("`x`"), "{e}");
        let e = parse(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "99999")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MASTER_PORT"), "{e}");
    }
}
