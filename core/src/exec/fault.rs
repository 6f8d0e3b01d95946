//! Fault injection for tests: failing or killing the process at the N-th step.

use std::io::{self};

/// Test hook: make the N-th mount-related step fail (`SYSEXT_FAULT_INJECT=N`, counting from 1),
/// or kill the process there (`SYSEXT_FAULT_KILL=N`: `abort()`, as a crash would).
/// Only honoured in debug builds and with the `fault-injection` feature.
#[derive(Debug, Default)]
pub struct FaultInjector {
    target: Option<u64>,
    kill: Option<u64>,
    count: std::sync::atomic::AtomicU64,
}

impl FaultInjector {
    /// Read the target from the environment.
    pub fn from_env() -> FaultInjector {
        let var = |name: &str| {
            if cfg!(any(debug_assertions, feature = "fault-injection")) {
                std::env::var(name).ok().and_then(|v| v.parse().ok())
            } else {
                None
            }
        };
        FaultInjector {
            target: var("SYSEXT_FAULT_INJECT"),
            kill: var("SYSEXT_FAULT_KILL"),
            count: Default::default(),
        }
    }

    /// Count a step; fail it if it is the chosen one.
    pub fn step(&self, what: &str) -> io::Result<()> {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.kill == Some(n) {
            std::process::abort();
        }
        if self.target == Some(n) {
            return Err(io::Error::other(format!(
                "injected fault at step {n} ({what})"
            )));
        }
        Ok(())
    }
}
