//! Turning panics inside task bodies into task errors.
//!
//! A body runs under `catch_unwind`; this module adds what the payload alone
//! does not carry: where the panic happened and, when `RUST_BACKTRACE` (or
//! `RUST_LIB_BACKTRACE`) asks for it, a backtrace. A process-wide panic hook,
//! installed once when the first runtime is built, records both for panics
//! raised inside a task and hands every other panic to the hook that was
//! there before. A task's panic is not printed: it becomes the task's error,
//! delivered to whoever reads the result, and is logged through `tracing`.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::{Arc, Once};

use rustyray_core::{TaskError, context};

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, Option<Arc<str>>)>> = const { RefCell::new(None) };
}

/// Installs the panic hook (once per process).
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if context::current_task().is_none() {
                return previous(info);
            }
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let backtrace = Backtrace::capture();
            let backtrace = (backtrace.status() == BacktraceStatus::Captured).then(|| Arc::from(backtrace.to_string()));
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some((location.unwrap_or_default(), backtrace)));
        }));
    });
}

/// The error a caught panic becomes.
pub(crate) fn into_error(payload: Box<dyn Any + Send>) -> TaskError {
    let message = if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_string()
    };
    let (message, backtrace) = match LAST_PANIC.try_with(|last| last.borrow_mut().take()).ok().flatten() {
        Some((location, backtrace)) if !location.is_empty() => (format!("{message} (at {location})"), backtrace),
        Some((_, backtrace)) => (message, backtrace),
        None => (message, None),
    };
    TaskError::Panicked { message, backtrace }
}
