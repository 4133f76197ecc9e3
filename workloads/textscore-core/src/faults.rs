//! Injectable faults for demos and tests: a slow hot path, a crash, a leak, panics.
//!
//! All are off unless the service configures them (env TEXTSCORE_FAULT, parsed in Python). The
//! decision of what a call does is a pure function of the configuration and the call's ordinal,
//! so tests can predict it; the binding carries out crashes (signals need libc).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    /// Busy-spin this many nanoseconds per feature, on top of the real work, on a fraction `rate`
    /// of calls (1.0: every call, a uniformly slower build; 0.05: a tail regression, the shape
    /// lock contention or allocator stalls give, where p99 suffers and the median does not).
    Slow {
        ns_per_feature: u64,
        rate: f64,
    },
    /// Die on the call with this 1-based ordinal: SIGSEGV, or abort (SIGABRT) when `abort`.
    Crash {
        after: u64,
        abort: bool,
    },
    /// Keep this many bytes per call, touched so they count in RSS, never freed.
    Leak {
        bytes_per_call: usize,
    },
    /// Panic on this fraction of calls, spread deterministically over the call ordinals.
    Panic {
        rate: f64,
    },
}

/// What one call must do besides scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Proceed,
    Crash { abort: bool },
    Panic,
}

/// Decides the action for the call with 1-based ordinal `call`.
pub fn action(fault: Fault, call: u64) -> Action {
    match fault {
        Fault::Crash { after, abort } if call >= after.max(1) => Action::Crash { abort },
        Fault::Panic { rate } if unit_interval(call) < rate => Action::Panic,
        _ => Action::Proceed,
    }
}

/// Whether the slow fault spins on this call.
pub fn slows(fault: Fault, call: u64) -> Option<u64> {
    match fault {
        Fault::Slow {
            ns_per_feature,
            rate,
        } if unit_interval(call) < rate => Some(ns_per_feature),
        _ => None,
    }
}

/// A deterministic, well-spread number in [0, 1) for a call ordinal.
fn unit_interval(call: u64) -> f64 {
    (crate::model::splitmix64(0x0070_616e_6963, call) >> 11) as f64 / (1u64 << 53) as f64
}

/// Busy-waits (burning CPU, as slow code would) for `ns_per_feature * features` nanoseconds.
pub fn spin(ns_per_feature: u64, features: u64) {
    let budget = Duration::from_nanos(ns_per_feature.saturating_mul(features));
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < budget {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Allocates and touches `bytes`, then forgets the allocation (the leak).
pub fn leak(bytes: usize) {
    if bytes > 0 {
        std::mem::forget(std::hint::black_box(vec![0xA5u8; bytes]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_fires_from_the_nth_call_on() {
        let fault = Fault::Crash {
            after: 3,
            abort: false,
        };
        assert_eq!(action(fault, 1), Action::Proceed);
        assert_eq!(action(fault, 2), Action::Proceed);
        assert_eq!(action(fault, 3), Action::Crash { abort: false });
        assert_eq!(action(fault, 4), Action::Crash { abort: false });
    }

    #[test]
    fn panic_rate_is_met_over_many_calls() {
        // 20,000 calls at rate 0.1: the binomial sd is ~42, so a 10-sigma band of ±0.02 cannot
        // fail for a well-spread sequence and does fail if the rate is ignored.
        let fault = Fault::Panic { rate: 0.1 };
        let panics = (1..=20_000)
            .filter(|&c| action(fault, c) == Action::Panic)
            .count();
        assert!((1600..=2400).contains(&panics), "{panics} panics");
        assert_eq!(
            (1..=1000)
                .filter(|&c| action(Fault::Panic { rate: 0.0 }, c) == Action::Panic)
                .count(),
            0
        );
        assert_eq!(
            (1..=1000)
                .filter(|&c| action(Fault::Panic { rate: 1.0 }, c) == Action::Panic)
                .count(),
            1000
        );
    }

    #[test]
    fn no_fault_always_proceeds() {
        assert!((1..1000).all(|c| action(Fault::None, c) == Action::Proceed));
        assert_eq!(
            action(
                Fault::Slow {
                    ns_per_feature: 10,
                    rate: 1.0
                },
                5
            ),
            Action::Proceed
        );
        assert_eq!(
            action(Fault::Leak { bytes_per_call: 10 }, 5),
            Action::Proceed
        );
    }

    #[test]
    fn slow_rate_picks_that_fraction_of_calls() {
        // 20,000 calls at rate 0.05: binomial sd ~31 calls (0.15 points); a ±1 point band cannot
        // fail for a well-spread sequence and does fail if the rate is ignored (100%).
        let fault = Fault::Slow {
            ns_per_feature: 7,
            rate: 0.05,
        };
        let slowed = (1..=20_000).filter(|&c| slows(fault, c) == Some(7)).count();
        assert!((800..=1200).contains(&slowed), "{slowed}");
        let every = Fault::Slow {
            ns_per_feature: 7,
            rate: 1.0,
        };
        assert!((1..1000).all(|c| slows(every, c) == Some(7)));
        assert!((1..1000).all(|c| slows(Fault::None, c).is_none()));
    }

    #[test]
    fn spin_takes_at_least_its_budget() {
        let start = Instant::now();
        spin(1_000, 2_000);
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
