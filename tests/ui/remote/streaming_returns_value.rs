#[rustyray::remote(streaming)]
async fn numbers(n: u64, out: rustyray::Yield<u64>) -> u64 {
    let _ = out;
    n
}

fn main() {}
