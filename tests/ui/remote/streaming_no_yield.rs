#[rustyray::remote(streaming)]
async fn numbers(n: u64) -> u64 {
    n
}

fn main() {}
