use rustyray::{ObjectRef, Yield};

#[rustyray::remote(streaming)]
async fn numbers(n: u64, out: Yield<u64>) -> rustyray::Result<()> {
    out.send(n).await
}

fn main() {
    // A stream is read item by item, not as one ref.
    let _all: ObjectRef<u64> = numbers::remote(3u64);
}
