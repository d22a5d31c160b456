//! The `work_per_task` example with mimalloc as the global allocator: the
//! same shapes, to count what glibc's `malloc` costs in them.
//!
//! ```text
//! cargo run --release --example work_per_task_mimalloc -- <shape> <batches>
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "work_per_task.rs"]
mod shapes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shapes::main()
}
