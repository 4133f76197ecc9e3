//! textscore_native._native: the pyo3 boundary of the textscore hot path.
//!
//! Owns three things the plain-Rust core cannot: releasing the GIL around the heavy work (so the
//! service's threads score in parallel), catching every Rust panic before it reaches Python
//! (counted, raised as `NativePanicError`, answered 500 by the service), and carrying out injected
//! crashes (signals). The scoring itself is textscore-core's.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use textscore_core::faults::{self, Action, Fault};
use textscore_core::Scorer;

pyo3::create_exception!(
    textscore_native,
    NativePanicError,
    PyRuntimeError,
    "A Rust panic caught at the boundary; the request failed, the process is fine."
);

static FAULT: RwLock<Fault> = RwLock::new(Fault::None);
static CALLS: AtomicU64 = AtomicU64::new(0);
static PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // One scorer (its scratch buffers) per server thread; the tables and weights are shared.
    static SCORER: RefCell<Scorer> = RefCell::new(Scorer::new());
}

fn current_fault() -> Fault {
    // A poisoned lock only means a writer panicked mid-write of a Copy value: the value is whole.
    *FAULT
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

fn crash(abort: bool) -> ! {
    if !abort {
        // SAFETY: raise() only delivers a signal to this process; SIGSEGV's default action
        // terminates it (exit code 139 in a container), which is the point of this fault.
        unsafe {
            libc::raise(libc::SIGSEGV);
        }
    }
    // Also the fallback if a SIGSEGV handler returned.
    std::process::abort()
}

/// The work done without the GIL: faults first (as a buggy build would), then scoring.
fn score_texts(texts: &[String], fault: Fault, call: u64) -> Vec<f64> {
    match faults::action(fault, call) {
        Action::Crash { abort } => crash(abort),
        Action::Panic => panic!("textscore fault injection: panic on call {call}"),
        Action::Proceed => {}
    }
    let (scores, features) = SCORER.with(|cell| {
        let mut scorer = cell.borrow_mut();
        let mut features = 0u64;
        let scores = texts
            .iter()
            .map(|text| {
                let scored = scorer.score(text);
                features += scored.features;
                scored.score
            })
            .collect::<Vec<f64>>();
        (scores, features)
    });
    if let Some(ns_per_feature) = faults::slows(fault, call) {
        faults::spin(ns_per_feature, features);
    }
    if let Fault::Leak { bytes_per_call } = fault {
        faults::leak(bytes_per_call);
    }
    scores
}

/// Scores a batch of texts (probabilities in (0, 1)), releasing the GIL while it works.
#[pyfunction]
fn score_batch(py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<f64>> {
    let fault = current_fault();
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let outcome = py
        .detach(move || panic::catch_unwind(AssertUnwindSafe(|| score_texts(&texts, fault, call))));
    outcome.map_err(|payload| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        NativePanicError::new_err(panic_message(payload.as_ref()))
    })
}

/// Runs `f` on this thread's scorer, turning a panic into `NativePanicError`.
fn with_scorer<T>(f: impl FnOnce(&mut Scorer) -> T) -> PyResult<T> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        SCORER.with(|cell| f(&mut cell.borrow_mut()))
    }))
    .map_err(|payload| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        NativePanicError::new_err(panic_message(payload.as_ref()))
    })
}

/// The normalised form of a text (table lookup per code point); for parity tests.
#[pyfunction]
fn normalise(text: &str) -> PyResult<String> {
    with_scorer(|scorer| scorer.normalise(text))
}

/// The feature hashes of a text in the order they are summed; for parity tests.
#[pyfunction]
fn feature_hashes(text: &str) -> PyResult<Vec<u64>> {
    with_scorer(|scorer| scorer.feature_hashes(text))
}

/// Sets the injected fault for this process ("none", "slow", "crash", "leak", "panic") and
/// restarts the call count the crash and panic faults go by.
#[pyfunction]
#[pyo3(signature = (kind, *, after = 1, rate = 0.0, leak_bytes = 0, slow_ns_per_feature = 0, signal = "segv"))]
fn set_fault(
    kind: &str,
    after: u64,
    rate: f64,
    leak_bytes: usize,
    slow_ns_per_feature: u64,
    signal: &str,
) -> PyResult<()> {
    let fault = match kind {
        "none" => Fault::None,
        "slow" if (0.0..=1.0).contains(&rate) => Fault::Slow {
            ns_per_feature: slow_ns_per_feature,
            rate,
        },
        "slow" => {
            return Err(PyValueError::new_err(format!(
                "slow rate must be in [0, 1], not {rate}"
            )))
        }
        "crash" => match signal {
            "segv" => Fault::Crash {
                after,
                abort: false,
            },
            "abort" => Fault::Crash { after, abort: true },
            other => {
                return Err(PyValueError::new_err(format!(
                    "signal must be segv or abort, not {other:?}"
                )))
            }
        },
        "leak" => Fault::Leak {
            bytes_per_call: leak_bytes,
        },
        "panic" if (0.0..=1.0).contains(&rate) => Fault::Panic { rate },
        "panic" => {
            return Err(PyValueError::new_err(format!(
                "panic rate must be in [0, 1], not {rate}"
            )))
        }
        other => return Err(PyValueError::new_err(format!("unknown fault {other:?}"))),
    };
    *FAULT
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = fault;
    // "Crash on request N" counts from here, not from the service's warm-up call.
    CALLS.store(0, Ordering::Relaxed);
    Ok(())
}

/// Panics caught at this boundary since the module was loaded.
#[pyfunction]
fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// What was built: crate version, cargo profile, the normalisation table it carries.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("crate_version", env!("CARGO_PKG_VERSION"))?;
    info.set_item(
        "profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    info.set_item(
        "unicode_table",
        textscore_core::table::TABLE_TEXT
            .lines()
            .next()
            .unwrap_or(""),
    )?;
    Ok(info)
}

#[pymodule]
#[pyo3(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(score_batch, m)?)?;
    m.add_function(wrap_pyfunction!(normalise, m)?)?;
    m.add_function(wrap_pyfunction!(feature_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(set_fault, m)?)?;
    m.add_function(wrap_pyfunction!(panics, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add("NativePanicError", m.py().get_type::<NativePanicError>())?;
    m.add("MAX_TEXTS", textscore_core::MAX_TEXTS)?;
    m.add("MAX_TEXT_CHARS", textscore_core::MAX_TEXT_CHARS)?;
    Ok(())
}
