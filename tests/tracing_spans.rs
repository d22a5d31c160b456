//! Every attempt runs in a `tracing` span that carries the task's context,
//! nested under the span of the task that submitted it, and arguments stay
//! out of logs unless a call opts in.
//!
//! One test per file: it installs a process-wide subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rustyray::prelude::*;

/// Log output, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[rustyray::remote]
fn child(x: u64) -> u64 {
    tracing::info!("child working on its input");
    x + 1
}

#[rustyray::remote]
async fn parent(x: u64) -> u64 {
    tracing::info!("parent submitting a child");
    child::remote(x).get().await.unwrap_or(0)
}

#[rustyray::remote]
fn with_password(user: String, password: String) -> usize {
    tracing::info!("checking credentials");
    user.len() + password.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_inside_tasks_carry_the_task_span_nested_under_the_submitter() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_max_level(tracing::Level::INFO).finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let rt = Runtime::builder().num_cpus(2).build().unwrap();
    let secret = "s3cr3t-value";
    rt.scope(async {
        let app_span = tracing::info_span!("request", id = 42);
        let result = {
            let _entered = app_span.enter();
            parent::options().name("outer").remote(1u64)
        };
        assert_eq!(result.get().await.unwrap(), 2);
        let hidden = with_password::remote("alice".to_string(), secret.to_string());
        assert_eq!(hidden.get().await.unwrap(), 17);
        let shown = with_password::options().record_args(true).remote("bob".to_string(), "pw".to_string());
        assert_eq!(shown.get().await.unwrap(), 5);
    })
    .await;
    rt.shutdown().await;

    let text = captured.text();
    let line = |needle: &str| -> String {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .into()
    };
    // The parent's log sits in the app's span, then the parent's task span.
    let parent_line = line("parent submitting a child");
    assert!(parent_line.contains("request{id=42}:task{"), "{parent_line}");
    assert!(parent_line.contains("function=\"tracing_spans::parent\""), "{parent_line}");
    assert!(parent_line.contains("name=\"outer\""), "{parent_line}");
    assert!(parent_line.contains("attempt=1"), "{parent_line}");
    // The child's span is a child of the parent's: the whole chain is there.
    let child_line = line("child working on its input");
    let parent_at = child_line.find("tracing_spans::parent").expect("the parent's span is in the chain");
    let child_at = child_line.find("tracing_spans::child").expect("the child's span is in the chain");
    assert!(child_line.contains("request{id=42}"), "{child_line}");
    assert!(parent_at < child_at, "{child_line}");
    assert!(child_line.contains("parent_task="), "{child_line}");

    // Arguments are redacted unless the call opted in.
    assert!(!text.contains(secret), "{text}");
    let checks: Vec<&str> = text.lines().filter(|l| l.contains("checking credentials")).collect();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().any(|l| l.contains(r#"args="(\"bob\", \"pw\")""#)), "{checks:?}");
    // Runtime lifecycle logs.
    assert!(text.contains("rustyray runtime started"), "{text}");
    assert!(text.contains("rustyray runtime shut down"), "{text}");
}
